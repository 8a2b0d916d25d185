# tests/Makefile.mk - the Criterion test programs, included from the
# top-level Makefile.am.  One program per concern; each runs through the TAP
# driver set up there.
#
# A plain test, tests/test_x.c, is one line:
#
#   tests_criterion += tests/test_x
#
# tests_criterion lists the Criterion programs: make check builds each
# (check_PROGRAMS) and runs it (TESTS).  Everything else comes from
# defaults:
#
#  - the source: a program without _SOURCES is built from its name plus
#    .c (automake's default source), tests/test_x.c;
#  - the preprocessor and compiler flags: a program without _CPPFLAGS or
#    _CFLAGS gets Makefile.am's AM_CPPFLAGS and AM_CFLAGS, which are what the
#    tests need: runtime/ is reached with -iquote only, so that the
#    runtime's internal headers are found by #include "..." but
#    runtime/sched.h cannot stand in for the system's <sched.h> (which
#    <pthread.h> and Criterion's headers include), and AM_CFLAGS carries
#    $(CRITERION_CFLAGS);
#  - the libraries: a program without _LDADD gets the global LDADD, which
#    is the tests' ($(tests_ldadd), below): every program of the other
#    folders names its own (bench/'s that link nothing, an empty one);
#  - the helpers: helpers.h, io_helpers.h and srv_harness.h declare what
#    tests/libcheck.la defines, so a test compiles only its own file.
#
# Programs that differ keep their own lines below: test_switch (the switch
# sources built in, no libweft), test_guard_scp/noscp (one source, two sets
# of flags), test_shm and test_pchan (libweft linked statically, and
# tests/libcheck_shm.la), and the tests that build servers/ or fuzz/ sources
# into themselves.

tests_criterion =
check_PROGRAMS += $(tests_criterion)
TESTS += $(tests_criterion)

# The helpers, a convenience library: each program that links it gets its
# own copy of what it uses, including TCHECK's recorder (h_rep) and the
# server under test (srvh).
check_LTLIBRARIES += tests/libcheck.la
tests_libcheck_la_SOURCES = tests/helpers.c tests/helpers.h \
	tests/io_helpers.c tests/io_helpers.h \
	tests/srv_harness.c tests/srv_harness.h

# tests/tsan_criterion.c defines mmap and mincore for the program in TSan
# builds, in place of libc's and TSan's, so it is linked into each program
# as an object, tests/tsan_criterion.lo, and not taken from the library:
# the linker takes a member of an archive only for a symbol still
# undefined, and in a TSan build both are defined already, weakly, by
# TSan's interceptors (which the member would not replace).  Listed here so
# that automake compiles it (and puts it in the tarball); it is not part of
# libcheck.la.
EXTRA_tests_libcheck_la_SOURCES = tests/tsan_criterion.c

tests_ldadd = tests/tsan_criterion.lo tests/libcheck.la libweft.la \
	$(CRITERION_LIBS) $(JEMALLOC_LIBS)
LDADD = $(tests_ldadd)

# Servers' sources built into a test are found with -I (http_parse.h, ...).
tests_servers_cppflags = $(AM_CPPFLAGS) -I$(top_srcdir)/servers

# test_switch checks the raw context switch of both back ends, so it builds
# them into itself and does not need libweft (nor the helpers).
tests_criterion += tests/test_switch
tests_test_switch_SOURCES = tests/test_switch.c \
	runtime/arch/switch_x86_64_sysv_elf.S runtime/arch/switch_ucontext.c
tests_test_switch_LDADD = tests/tsan_criterion.lo $(CRITERION_LIBS) -lm

tests_criterion += tests/test_stack

# test_timer_heap checks the timer heap alone, so it builds runtime/timer.c
# into itself (defining the two runtime calls it needs) and does not need
# libweft.
tests_criterion += tests/test_timer_heap
tests_test_timer_heap_SOURCES = tests/test_timer_heap.c runtime/timer.c
tests_test_timer_heap_LDADD = tests/tsan_criterion.lo $(CRITERION_LIBS)

# One source, two programs: with and without stack clash protection.
tests_criterion += tests/test_guard_scp tests/test_guard_noscp
tests_test_guard_scp_SOURCES = tests/test_guard.c
tests_test_guard_scp_CFLAGS = $(AM_CFLAGS) $(WEFT_SCP_CFLAGS)
tests_test_guard_noscp_SOURCES = tests/test_guard.c
tests_test_guard_noscp_CFLAGS = $(AM_CFLAGS) $(WEFT_NO_SCP_CFLAGS)

tests_criterion += tests/test_gthread

tests_criterion += tests/test_migrate

tests_criterion += tests/test_sync

tests_criterion += tests/test_rwlock

tests_criterion += tests/test_chan

tests_criterion += tests/test_timer

tests_criterion += tests/test_monitor

tests_criterion += tests/test_inject

tests_criterion += tests/test_shutdown

tests_criterion += tests/test_misuse

tests_criterion += tests/test_reset

# tests/headers_check.sh: every header of runtime/ compiles on its own.
TESTS += tests/headers_check.sh
EXTRA_DIST += tests/headers_check.sh
AM_TESTS_ENVIRONMENT = CC='$(CC)' WEFT_HDR_CFLAGS='$(AM_CFLAGS)'; \
	export CC WEFT_HDR_CFLAGS;

# tests/readme_hello.sh: the hello of README.md, as printed there (the
# block that tests/readme_block.sh extracts), compiles against libweft.la
# with warnings as errors and prints 42.  It takes CC and weft's C flags
# from the environment set just above.  tools/install-check.sh builds the
# same block against the installed copy.
TESTS += tests/readme_hello.sh
EXTRA_DIST += tests/readme_hello.sh tests/readme_block.sh

# tests/man_check.sh: every call of weft.h has its comment, and so its
# manual page; every field and public macro has its comment; weft(3) lists
# every call (tools/weft-man.pl --check), and the pages render cleanly.
TESTS += tests/man_check.sh
EXTRA_DIST += tests/man_check.sh tests/valgrind.supp

# ---- proc --------------------------------------------------------------
# Worker processes and modes.
#
# test_task: weft_task_start/weft_task_wait in the three modes.
# test_proc: the supervisor of worker processes; each test runs it in a
# child of its own, so that Criterion's process never supervises.

tests_criterion += tests/test_task

tests_criterion += tests/test_proc

# ---- shm ---------------------------------------------------------------
# The shared heap and process channels.
#
# These tests drive the shared heap's internal calls (runtime/shm.h and shm_test.h:
# weft__shm_attach, weft__shm_reclaim, ...), playing the supervisor
# themselves, so they link libweft statically: its internal symbols are
# hidden in the shared library.  (-static here is libtool's: only libweft
# is linked statically.)  Their supervisor helpers (shm_helpers.h) call
# those internal symbols too, so they are a library of their own, linked
# by these two programs only.

check_LTLIBRARIES += tests/libcheck_shm.la
tests_libcheck_shm_la_SOURCES = tests/shm_helpers.c tests/shm_helpers.h

tests_criterion += tests/test_shm
tests_test_shm_CFLAGS = $(AM_CFLAGS) $(JEMALLOC_CFLAGS)
tests_test_shm_LDFLAGS = $(AM_LDFLAGS) -static
tests_test_shm_LDADD = tests/libcheck_shm.la $(tests_ldadd)

tests_criterion += tests/test_pchan
tests_test_pchan_LDFLAGS = $(AM_LDFLAGS) -static
tests_test_pchan_LDADD = tests/libcheck_shm.la $(tests_ldadd)

# ---- io ----------------------------------------------------------------
# I/O that parks green threads, cancellation and the
# blocking-call pool (tests).
#
# test_io: weft_read/write/readv/writev/recv/send/accept/connect/wait_fd,
# weft_close, weft_fd_adopt/forget and weft_cancel, from green threads and
# from plain kernel threads.
# test_blocking: weft_blocking and the calls built on it (weft_open,
# weft_pread, weft_pwrite, weft_fsync, weft_getaddrinfo).

tests_criterion += tests/test_io

tests_criterion += tests/test_blocking

# test_cancel: weft_cancel of a green thread blocked in each call that parks.
tests_criterion += tests/test_cancel

# ---- echo --------------------------------------------------------------
# The echo server, end to end.
#
# test_echo starts servers/echo in each of its modes and talks to it over
# TCP (make check builds the servers first, with everything else).

tests_criterion += tests/test_echo

# ---- http --------------------------------------------------------------
# The HTTP server and its parser.
#
# test_http_parse: unit tests of the request parser and the chunked-body
# decoder (compiled in from servers/http_parse.c).  test_http: tests that
# run servers/http as a child process in each mode and talk to it over TCP
# (make check builds servers/http first).

tests_criterion += tests/test_http_parse
tests_test_http_parse_SOURCES = tests/test_http_parse.c \
	servers/http_parse.c servers/http_parse.h
tests_test_http_parse_CPPFLAGS = $(tests_servers_cppflags)

tests_criterion += tests/test_http
tests_test_http_SOURCES = tests/test_http.c \
	servers/http_parse.c servers/http_parse.h
tests_test_http_CPPFLAGS = $(tests_servers_cppflags)

# ---- kv ----------------------------------------------------------------
# The kv server, its RESP parser and its store.
#
# test_resp and test_kv_store: the RESP parser and the store as units
# (their sources are built into the tests; the store formats integers
# with resp.c).  test_kv: servers/kv as a child
# process spoken to over TCP in each mode.

tests_criterion += tests/test_resp
tests_test_resp_SOURCES = tests/test_resp.c servers/resp.c servers/resp.h
tests_test_resp_CPPFLAGS = $(tests_servers_cppflags)

tests_criterion += tests/test_kv_store
tests_test_kv_store_SOURCES = tests/test_kv_store.c \
	servers/kv_store.c servers/kv_store.h servers/resp.c servers/resp.h
tests_test_kv_store_CPPFLAGS = $(tests_servers_cppflags)

tests_criterion += tests/test_kv

# ---- examples ----------------------------------------------------------
# test_example_server: examples/server (the server docs/embedding.md walks
# through) as a child process spoken to over TCP: answers, 200 clients at
# once, its deadlines, its size cap, shutdown on SIGTERM and SIGINT, and
# its arguments (make check builds the examples first).

tests_criterion += tests/test_example_server

# tests/embedding_excerpts.sh: the code blocks of docs/embedding.md are
# still excerpts of examples/server.c (a plain shell test, as
# tests/gdb_check.sh below).
TESTS += tests/embedding_excerpts.sh
EXTRA_DIST += tests/embedding_excerpts.sh

# ---- valgrind ----------------------------------------------------------
# Memcheck over a representative part of the
# suite: `make check-valgrind`, in a build configured with --enable-valgrind
# (which registers every green-thread stack with valgrind, so that a switch
# is known to be a stack switch).  Any memcheck error fails the target.
#
# The programs: examples that spawn, switch, block on channels and mutexes and
# migrate between workers, the example that preempts (a stopped thread's
# resume stub runs on its stack below its stack pointer), and the
# Criterion programs of the sync primitives.  Criterion runs each test in
# a child process, hence --trace-children.
#
# --fair-sched=yes: valgrind runs one thread at a time, and with its
# default lock a thread that spins on sched_yield (a kernel thread's
# weft_yield, a trylock loop) can take the lock back again and again while
# the thread it waits for never runs.  tests/test_sync's mutex_counter took
# 7 to 20 s a run that way (a test has 60), against 0.35 to 0.56 s with
# the fair lock.

VG_DEMOS = examples/channel examples/counter examples/vector \
	examples/timeslice
VG_TESTS = tests/test_sync
VG_FLAGS = --error-exitcode=9 --trace-children=yes -q \
	--child-silent-after-fork=no --fair-sched=yes \
	--suppressions=$(srcdir)/tests/valgrind.supp

# A report from a test's child process does not change the runner's exit
# status (the child has told Criterion its result before it exits), so
# the target also fails on any report in valgrind's output (with -q,
# valgrind prints nothing else).
check-valgrind: all
	@if test "$(WEFT_VALGRIND)" != 1; then \
	  echo "check-valgrind: configure with --enable-valgrind first" >&2; \
	  exit 1; \
	fi
	$(MAKE) $(AM_MAKEFLAGS) $(VG_TESTS)
	@set -e; for p in $(VG_DEMOS) $(VG_TESTS); do \
	  echo "valgrind: $$p"; \
	  CRITERION_JOBS=1 WEFT_HOG_MS=0 $(LIBTOOL) --mode=execute \
	    valgrind $(VG_FLAGS) ./$$p >/dev/null 2>vg-check.log || \
	    { cat vg-check.log >&2; exit 1; }; \
	  cat vg-check.log >&2; \
	  if grep -q '^==[0-9]*== ' vg-check.log; then \
	    echo "check-valgrind: valgrind reported errors in $$p" >&2; \
	    exit 1; \
	  fi; \
	done; rm -f vg-check.log; echo "valgrind: no errors"

.PHONY: check-valgrind

# ---- tsan --------------------------------------------------------------
# `make check-tsan`, in a build configured with
# --enable-tsan: every green thread is a ThreadSanitizer fiber and every
# switch is announced to it, so TSan follows green threads across workers.
# It runs the whole test suite (tests/tsan_criterion.c is what lets
# Criterion start under TSan), then examples that spawn, switch and block on
# channels and mutexes, and the green echo server under load from the
# green echo client.  Any report fails the target: halt_on_error makes the
# reporting process exit with status 66.  (examples/counter is left out: it
# shows a data race on purpose.)
#
# Two tests of tests/test_task are disabled in TSan builds: they fork from
# green threads while other threads run and start threads in the child,
# which TSan does not support (the child can hang inside TSan);
# die_after_fork=0 lets the other tests' children run.  handle_segv=0: the
# guard-page and crash tests expect weft's own report and signal, not
# TSan's.

TSAN_DEMOS = examples/channel examples/vector
TSAN_OPTIONS_CHECK = halt_on_error=1 exitcode=66 die_after_fork=0 handle_segv=0

# What it needs is built one make after another: as prerequisites, `all`
# (a recursive make) and bench/echo_load would both link libweft.la at once.
check-tsan:
	@if test "$(WEFT_TSAN)" != 1; then \
	  echo "check-tsan: configure with --enable-tsan first" >&2; \
	  exit 1; \
	fi
	$(MAKE) $(AM_MAKEFLAGS) all
	$(MAKE) $(AM_MAKEFLAGS) bench/echo_load
	TSAN_OPTIONS="$(TSAN_OPTIONS_CHECK)" $(MAKE) $(AM_MAKEFLAGS) check
	@set -e; export TSAN_OPTIONS="$(TSAN_OPTIONS_CHECK)"; \
	for p in $(TSAN_DEMOS); do \
	  echo "tsan: $$p"; ./$$p >/dev/null; \
	done; \
	echo "tsan: servers/echo under bench/echo_load"; \
	out=$$(mktemp); \
	./servers/echo --mode green --workers 2 --port 0 --quiet >$$out & \
	pid=$$!; \
	for i in 1 2 3 4 5 6 7 8 9 10; do \
	  test -s $$out && break; sleep 1; \
	done; \
	port=$$(sed -n 's/.*:\([0-9]*\)$$/\1/p' $$out); rm -f $$out; \
	./bench/echo_load --port $$port -c 20 -d 2 >/dev/null || \
	  { kill $$pid; exit 1; }; \
	kill -TERM $$pid; wait $$pid; \
	echo "tsan: no reports"

.PHONY: check-tsan

# ---- gdb ---------------------------------------------------------------
# The check of the gdb extension (tools/weft-gdb.py),
# included from the top-level Makefile.am.
#
# tests/gdb_check.sh debugs tests/gdb_target twice: linked with libweft.la
# as the other programs are (libtool may link it shared: the script runs gdb
# through "libtool --mode=execute", which debugs the real binary rather
# than libtool's wrapper) and linked statically (tests/gdb_target_static).
# It is a plain shell test, not TAP: the Criterion wrapper in LOG_COMPILER
# does not apply to it.  Tests ending in .sh go through automake's default
# driver (SH_LOG_DRIVER is left to automake: build-aux/test-driver, which
# automake then also puts in the tarball): exit 0 passes, 77 skips (no gdb,
# or ptrace not allowed), anything else fails; the output is in
# tests/gdb_check.log.  Tests without an extension keep LOG_DRIVER and
# LOG_COMPILER.

TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = $(SHELL)

check_PROGRAMS += tests/gdb_target tests/gdb_target_static
TESTS += tests/gdb_check.sh
EXTRA_DIST += tests/gdb_check.sh

tests_gdb_target_SOURCES = tests/gdb_target.c
tests_gdb_target_CPPFLAGS = -D_GNU_SOURCE -I$(top_srcdir)/include
tests_gdb_target_LDADD = libweft.la $(JEMALLOC_LIBS)

tests_gdb_target_static_SOURCES = tests/gdb_target.c
tests_gdb_target_static_CPPFLAGS = -D_GNU_SOURCE -I$(top_srcdir)/include \
	-DGDB_TARGET_STATIC
tests_gdb_target_static_LDADD = libweft.la $(JEMALLOC_LIBS)
# libtool's -static: link the uninstalled libweft.la statically.
tests_gdb_target_static_LDFLAGS = $(AM_LDFLAGS) -static

# ---- fuzz --------------------------------------------------------------
# The fuzz targets' saved inputs, replayed.
#
# test_fuzz_regress runs every file of fuzz/corpus/<target>/ and
# fuzz/regress/<target>/ through the checking functions of the fuzz targets
# (fuzz/*_fuzz.c, built here with the ordinary compiler and -DFUZZ_NO_MAIN,
# so without libFuzzer).  It reads them from the source tree, found through
# FUZZ_DIR, so out-of-tree builds and distcheck work.  Fuzzing itself is
# make fuzz / make fuzz-short (fuzz/Makefile.mk).

tests_criterion += tests/test_fuzz_regress
tests_test_fuzz_regress_SOURCES = tests/test_fuzz_regress.c fuzz/fuzz.h \
	fuzz/http_parse_fuzz.c fuzz/resp_fuzz.c fuzz/sync_fuzz.c \
	servers/http_parse.c servers/http_parse.h servers/resp.c servers/resp.h
tests_test_fuzz_regress_CPPFLAGS = $(tests_servers_cppflags) \
	-I$(top_srcdir)/fuzz -DFUZZ_NO_MAIN -DFUZZ_DIR='"$(abs_top_srcdir)/fuzz"'
tests_criterion += tests/test_preempt
