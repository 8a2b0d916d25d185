# tests/Makefile-valgrind.mk - memcheck over a representative part of the
# suite: `make check-valgrind`, in a build configured with --enable-valgrind
# (which registers every green-thread stack with valgrind, so that a switch
# is known to be a stack switch).  Any memcheck error fails the target.
#
# The programs: examples that spawn, switch, block on channels and mutexes and
# migrate between workers, and the Criterion programs of the sync
# primitives.  Criterion runs each test in
# a child process, hence --trace-children.

VG_DEMOS = examples/channel examples/counter examples/vector
VG_TESTS = tests/test_sync
VG_FLAGS = --error-exitcode=9 --trace-children=yes -q \
	--child-silent-after-fork=no

check-valgrind: all
	@if test "$(WEFT_VALGRIND)" != 1; then \
	  echo "check-valgrind: configure with --enable-valgrind first" >&2; \
	  exit 1; \
	fi
	$(MAKE) $(AM_MAKEFLAGS) $(VG_TESTS)
	@set -e; for p in $(VG_DEMOS) $(VG_TESTS); do \
	  echo "valgrind: $$p"; \
	  CRITERION_JOBS=1 WEFT_HOG_MS=0 $(LIBTOOL) --mode=execute \
	    valgrind $(VG_FLAGS) ./$$p >/dev/null; \
	done; echo "valgrind: no errors"

.PHONY: check-valgrind
