# tests/Makefile-tsan.mk - `make check-tsan`, in a build configured with
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
