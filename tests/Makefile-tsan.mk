# tests/Makefile-tsan.mk - `make check-tsan`, in a build configured with
# --enable-tsan: every green thread is a ThreadSanitizer fiber and every
# switch is announced to it, so TSan follows green threads across workers.
# Criterion cannot run under TSan (its test arena collides with TSan's
# memory layout), so this runs programs instead: demos that spawn, switch,
# block on channels and mutexes, and the green echo server under load from
# the green echo client.  Any report fails the target.  (demos/counter is
# left out: it shows a data race on purpose.)

TSAN_DEMOS = demos/channel demos/vector

check-tsan: all bench/echo_load
	@if test "$(WEFT_TSAN)" != 1; then \
	  echo "check-tsan: configure with --enable-tsan first" >&2; \
	  exit 1; \
	fi
	@set -e; export TSAN_OPTIONS="halt_on_error=1 exitcode=66"; \
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
