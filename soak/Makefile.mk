# soak/Makefile.mk - the soak test of the HTTP and KV servers, included from
# the top-level Makefile.am after the servers and bench fragments.  Its load
# client, soak/soak_client (weft green threads), is built by `make` like the
# bench programs, so it always compiles; `make soak` runs soak/soak.sh for
# SOAK_SECONDS seconds (default 600; `make soak SOAK_SECONDS=60` for a short
# run), then the operator's checks, soak/operator.sh, which `make
# soak-operator` runs alone.  See soak/README.md.

noinst_PROGRAMS += soak/soak_client

# soak_client.c: the connection layer, the slots, the report and main;
# http_check.c and kv_check.c: each server's requests and checks.
soak_soak_client_SOURCES = soak/soak_client.c soak/soak_client.h \
	soak/http_check.c soak/kv_check.c
soak_soak_client_CPPFLAGS = $(bench_cppflags)
soak_soak_client_LDADD = $(bench_ldadd)

EXTRA_DIST += soak/soak.sh soak/operator.sh soak/lib.sh soak/README.md

SOAK_SECONDS = 600

soak: all soak/soak_client tests/test_reset
	SOAK_SECONDS=$(SOAK_SECONDS) $(SHELL) $(srcdir)/soak/soak.sh $(builddir)

# Only the operator's checks (soak/operator.sh): about 30 s a round.
OPERATOR_ROUNDS = 1

soak-operator: all soak/soak_client
	OPERATOR_ROUNDS=$(OPERATOR_ROUNDS) $(SHELL) $(srcdir)/soak/operator.sh \
	    $(builddir)

.PHONY: soak soak-operator
