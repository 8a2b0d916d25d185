# bench/Makefile-servers.mk - the server bench, included from the top-level
# Makefile.am after bench/Makefile.mk.  Its two load clients are built by
# `make` like the other bench programs; `make bench-servers` runs
# bench/servers.sh on its own (about a minute and a half), and `make bench`
# and `make bench-quick` run it as their last part.  See bench/README.md.

noinst_PROGRAMS += bench/echo_load bench/conn_hold bench/mget_stall

# The echo load client runs its connections as weft green threads.
bench_echo_load_SOURCES = bench/echo_load.c
bench_echo_load_CPPFLAGS = $(bench_cppflags)
bench_echo_load_LDADD = $(bench_ldadd)

# The connection holder uses plain non-blocking sockets and epoll.
bench_conn_hold_SOURCES = bench/conn_hold.c
bench_conn_hold_CPPFLAGS = $(bench_cppflags)

# The large-reply probe: blocking sockets and one pthread, no weft.
bench_mget_stall_SOURCES = bench/mget_stall.c
bench_mget_stall_CPPFLAGS = $(bench_cppflags)
bench_mget_stall_LDADD = $(PTHREAD_LIBS)

EXTRA_DIST += bench/servers.sh

bench-servers: all
	$(SHELL) $(srcdir)/bench/servers.sh full $(builddir)

.PHONY: bench-servers
