# soak/Makefile.mk - the soak test of the HTTP and KV servers, included from
# the top-level Makefile.am after the demos and bench fragments.  Its load
# client, soak/soak_client (weft green threads), is built by `make` like the
# bench programs, so it always compiles; `make soak` runs soak/soak.sh for
# SOAK_SECONDS seconds (default 600; `make soak SOAK_SECONDS=60` for a short
# run).  See soak/README.md.

noinst_PROGRAMS += soak/soak_client

soak_soak_client_SOURCES = soak/soak_client.c
soak_soak_client_CPPFLAGS = $(bench_cppflags)
soak_soak_client_LDADD = $(bench_ldadd)

EXTRA_DIST += soak/soak.sh soak/README.md

SOAK_SECONDS = 600

soak: all soak/soak_client tests/test_reset
	SOAK_SECONDS=$(SOAK_SECONDS) $(SHELL) $(srcdir)/soak/soak.sh $(builddir)

.PHONY: soak
