# tests/Makefile-tsan.mk - `make check-tsan`, in a build configured with
# --enable-tsan: every green thread is a ThreadSanitizer fiber and every
# switch is announced to it, so TSan follows green threads across workers.
# It runs Criterion test programs (tests/tsan_criterion.c is what lets
# Criterion start under TSan), then demos that spawn, switch and block on
# channels and mutexes, and the green echo server under load from the
# green echo client.  Any report fails the target: halt_on_error makes the
# reporting process exit with status 66.  (demos/counter is left out: it
# shows a data race on purpose.)
#
# TSAN_TESTS are the programs that run with zero reports.  The others still
# produce some: statistics counters and the monitor's samples read without
# atomics, an unlocked emptiness check in weft_cond_signal, green-thread
# state written by a waker after a wake TSan cannot see (through epoll),
# and the forking tests.  `make check-tsan TSAN_TESTS="$(TESTS)"` runs
# them all.

TSAN_DEMOS = demos/channel demos/vector
TSAN_TESTS = tests/test_stack tests/test_migrate tests/test_chan \
  tests/test_timer tests/test_blocking tests/test_http tests/test_fuzz_regress
TSAN_OPTIONS_CHECK = halt_on_error=1 exitcode=66

check-tsan: all bench/echo_load
	@if test "$(WEFT_TSAN)" != 1; then \
	  echo "check-tsan: configure with --enable-tsan first" >&2; \
	  exit 1; \
	fi
	TSAN_OPTIONS="$(TSAN_OPTIONS_CHECK)" $(MAKE) $(AM_MAKEFLAGS) check \
	  TESTS="$(TSAN_TESTS)"
	@set -e; export TSAN_OPTIONS="$(TSAN_OPTIONS_CHECK)"; \
	for p in $(TSAN_DEMOS); do \
	  echo "tsan: $$p"; ./$$p >/dev/null; \
	done; \
	echo "tsan: demos/echo under bench/echo_load"; \
	out=$$(mktemp); \
	./demos/echo --mode green --workers 2 --port 0 --quiet >$$out & \
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
