# bench/Makefile.mk - the bench programs, included from the top-level
# Makefile.am.  They are built by `make` (so they always compile) but never
# run as tests: `make bench` runs them all, prints a summary with the
# targets and writes bench/results/REPORT.md (in the build directory) with
# tables and plots; `make bench-quick` is the short version CI runs.  Each
# program also runs on its own; see bench/README.md.
#
# What the bench does with a sample that fails, a figure that stalls and a
# figure far from its usual range is checked by `make check`:
# bench/check_report.sh runs report.sh on made-up figures and two programs
# with failures injected (about a second; a plain shell test, like
# tests/gdb_check.sh).

# Like the tests, the benches reach the runtime's internal headers only
# with #include "..." (-iquote), so that runtime/sched.h cannot stand in for
# the system's <sched.h>.
bench_cppflags = -D_GNU_SOURCE -I$(top_srcdir)/include \
	-iquote $(top_srcdir)/runtime -I$(top_builddir)
bench_common = bench/bench.c bench/bench.h
bench_gcommon = $(bench_common) bench/gbench.h
bench_ldadd = libweft.la $(JEMALLOC_LIBS)

noinst_PROGRAMS += \
	bench/machine \
	bench/switch \
	bench/yield \
	bench/chan \
	bench/deadline \
	bench/spawn \
	bench/mem \
	bench/idle \
	bench/task \
	bench/handoff \
	bench/msg \
	bench/shm \
	bench/preempt

# The raw switch: both back ends compiled in directly, no scheduler.  It,
# machine and conn_hold link no library: their empty LDADD keeps them from
# the global default, which is the tests' (tests/Makefile.mk).
bench_switch_SOURCES = bench/switch.c $(bench_common) runtime/ctx.h \
	runtime/arch/switch_x86_64_sysv_elf.S runtime/arch/switch_ucontext.c \
	bench/ref/switch_nofp.S
bench_switch_CPPFLAGS = $(bench_cppflags)
bench_switch_LDADD =
# With Boost.Context installed it is measured too, as a reference
# (switch.boost); no other program links it.
if HAVE_BOOST_CONTEXT
bench_switch_CPPFLAGS += -DWEFT_BENCH_BOOST_CONTEXT=1
bench_switch_LDADD += $(BOOST_CONTEXT_LIBS)
endif

# The machine's own costs: no runtime.
bench_machine_SOURCES = bench/machine.c $(bench_common)
bench_machine_CPPFLAGS = $(bench_cppflags)
bench_machine_LDADD =

bench_yield_SOURCES = bench/yield.c $(bench_gcommon)
bench_yield_CPPFLAGS = $(bench_cppflags)
bench_yield_LDADD = $(bench_ldadd)
bench_deadline_SOURCES = bench/deadline.c $(bench_gcommon)
bench_deadline_CPPFLAGS = $(bench_cppflags)
bench_deadline_LDADD = $(bench_ldadd)
bench_chan_SOURCES = bench/chan.c $(bench_gcommon)
bench_chan_CPPFLAGS = $(bench_cppflags)
bench_chan_LDADD = $(bench_ldadd)
bench_spawn_SOURCES = bench/spawn.c $(bench_gcommon)
bench_spawn_CPPFLAGS = $(bench_cppflags)
bench_spawn_LDADD = $(bench_ldadd)
bench_mem_SOURCES = bench/mem.c $(bench_gcommon)
bench_mem_CPPFLAGS = $(bench_cppflags)
bench_mem_LDADD = $(bench_ldadd)
bench_idle_SOURCES = bench/idle.c $(bench_gcommon)
bench_idle_CPPFLAGS = $(bench_cppflags)
bench_idle_LDADD = $(bench_ldadd)
bench_task_SOURCES = bench/task.c $(bench_gcommon)
bench_task_CPPFLAGS = $(bench_cppflags)
bench_task_LDADD = $(bench_ldadd)
bench_handoff_SOURCES = bench/handoff.c $(bench_gcommon)
bench_handoff_CPPFLAGS = $(bench_cppflags)
bench_handoff_LDADD = $(bench_ldadd)
bench_msg_SOURCES = bench/msg.c $(bench_gcommon)
bench_msg_CPPFLAGS = $(bench_cppflags)
bench_msg_LDADD = $(bench_ldadd)
bench_shm_SOURCES = bench/shm.c $(bench_gcommon)
bench_shm_CPPFLAGS = $(bench_cppflags)
bench_shm_LDADD = $(bench_ldadd)
bench_preempt_SOURCES = bench/preempt.c $(bench_gcommon)
bench_preempt_CPPFLAGS = $(bench_cppflags)
bench_preempt_LDADD = $(bench_ldadd)

# The address-space switch, isolated (threads against processes through
# one futex, no weft), and the same work on one CPU and on two (true
# parallelism, green threads and kernel threads).
noinst_PROGRAMS += bench/mmswitch bench/parallel
bench_mmswitch_SOURCES = bench/mmswitch.c $(bench_common)
bench_mmswitch_CPPFLAGS = $(bench_cppflags)
bench_mmswitch_LDADD = $(PTHREAD_LIBS)
bench_parallel_SOURCES = bench/parallel.c $(bench_gcommon)
bench_parallel_CPPFLAGS = $(bench_cppflags)
bench_parallel_LDADD = $(bench_ldadd)

TESTS += bench/check_report.sh

EXTRA_DIST += bench/run.sh bench/report.sh bench/report.awk bench/figures.txt \
	bench/ratios.txt bench/refs.txt bench/claims.txt bench/servers.gp \
	bench/README.md bench/lib.sh bench/ab.sh \
	bench/check_report.sh \
	bench/create.gp bench/handoff.gp bench/memory.gp bench/talk.gp \
	bench/scale.gp bench/preempt.gp bench/latency.gp bench/results/.gitkeep

bench: all
	$(SHELL) $(srcdir)/bench/run.sh full $(builddir)

bench-quick: all
	$(SHELL) $(srcdir)/bench/run.sh quick $(builddir)

# `make bench-ab BASE=REV [AB_ROUNDS=5] [AB_PROGRAMS="yield chan"]`: the
# library of git revision REV, built apart in bench/ab-base (plain
# configure), against this build's, the bench programs in turns with each
# (bench/ab.sh): what a change did to every figure, measured within one run.
# (ab.sh's own default; named here so that AB_PROGRAMS alone is not taken
# for the rounds.)
AB_ROUNDS = 5
bench-ab: all
	@test -n "$(BASE)" || { echo "usage: make bench-ab BASE=<git revision>" >&2; exit 2; }
	rm -rf bench/ab-base && $(MKDIR_P) bench/ab-base
	(cd $(srcdir) && git archive --format=tar $(BASE)) | \
	  tar -x -C bench/ab-base
	cd bench/ab-base && autoreconf -fi >/dev/null 2>&1 && \
	  ./configure -q >/dev/null && $(MAKE) libweft.la >/dev/null
	$(SHELL) $(srcdir)/bench/ab.sh bench/ab-base/.libs $(AB_ROUNDS) \
	  $(AB_PROGRAMS)

.PHONY: bench bench-quick bench-ab

# ---- servers -----------------------------------------------------------
# The server bench.  Its load clients are built by `make` like the other
# bench programs; `make bench-servers` runs
# bench/servers.sh on its own (about two minutes and a half), and `make bench`
# and `make bench-quick` run it as their last part.  See bench/README.md.

noinst_PROGRAMS += bench/echo_load bench/conn_hold bench/mget_stall

# The echo load client runs its connections as weft green threads.
bench_echo_load_SOURCES = bench/echo_load.c
bench_echo_load_CPPFLAGS = $(bench_cppflags)
bench_echo_load_LDADD = $(bench_ldadd)

# The connection holder uses plain non-blocking sockets and epoll.
bench_conn_hold_SOURCES = bench/conn_hold.c
bench_conn_hold_CPPFLAGS = $(bench_cppflags)
bench_conn_hold_LDADD =

# The large-reply probe: blocking sockets and one pthread, no weft.
bench_mget_stall_SOURCES = bench/mget_stall.c
bench_mget_stall_CPPFLAGS = $(bench_cppflags)
bench_mget_stall_LDADD = $(PTHREAD_LIBS)

# The floor of the KV and HTTP loads (kv.*.floor, http.*.floor): plain
# epoll, no weft, no store.
noinst_PROGRAMS += bench/epoll_floor
bench_epoll_floor_SOURCES = bench/ref/epoll_floor.c bench/ref/floor_frame.h
bench_epoll_floor_CPPFLAGS = $(bench_cppflags)
bench_epoll_floor_LDADD =

# The same with io_uring (kv.*.floor.uring, http.*.floor.uring), when
# liburing is installed.
if HAVE_URING
noinst_PROGRAMS += bench/uring_floor
bench_uring_floor_SOURCES = bench/ref/uring_floor.c bench/ref/floor_frame.h
bench_uring_floor_CPPFLAGS = $(bench_cppflags)
bench_uring_floor_CFLAGS = $(AM_CFLAGS) $(URING_CFLAGS)
bench_uring_floor_LDADD = $(URING_LIBS)
endif

EXTRA_DIST += bench/servers.sh bench/rounds.awk bench/wrk_pct.lua \
	bench/alive_go.sh bench/ref/alive.go
# What bench/alive_go.sh builds: the Go reference and Go's build cache.
CLEANFILES += bench/alive-go
clean-local: clean-bench-gocache
clean-bench-gocache:
	-chmod -R u+w bench/.gocache 2>/dev/null; rm -rf bench/.gocache
	rm -rf bench/ab-base
.PHONY: clean-bench-gocache

bench-servers: all
	$(SHELL) $(srcdir)/bench/servers.sh full $(builddir)

.PHONY: bench-servers
