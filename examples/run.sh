#!/bin/sh
# run.sh - runs every example, shows its output, and checks it did what
# it shows.  `make run-examples` calls it with the build directory.
#
#   sh examples/run.sh [BUILDDIR]
#
# Exit status: the number of examples that did not behave (0: all did).

set -u

builddir=${1:-.}
bin=$builddir/examples
out=${TMPDIR:-/tmp}/weft-demo.$$
trap 'rm -f "$out"' EXIT
bad=0

# example  expected-exit-status  text-its-output-must-contain
check() {
	name=$1 want_status=$2 want_text=$3
	echo "==> examples/$name"
	if [ ! -x "$bin/$name" ]; then
		echo "    not built (run make first)"
		bad=$((bad + 1))
		return
	fi
	timeout 120 "$bin/$name" >"$out" 2>&1
	status=$?
	sed 's/^/    /' "$out"
	if [ "$status" -ne "$want_status" ]; then
		echo "    FAIL: exit status $status, expected $want_status"
		bad=$((bad + 1))
	elif ! grep -qF -- "$want_text" "$out"; then
		echo "    FAIL: the output does not contain: $want_text"
		bad=$((bad + 1))
	else
		echo "    ok (exit status $status)"
	fi
	echo
}

check vector 0 '[1, 2, 3, 4, 5]'
check channel 0 'received 42'
check counter 0 'got 800000  -> exact'
check layout 0 'green thread'
# Death by SIGABRT: the shell reports 128 + 6.
check overflow 134 'overflowed its 64 KiB stack'
check shared_list 0 '8 of 8 new nodes reuse'
check crash 0 'killed by SIGSEGV; restarting'
check when 0 'When to use which'

if [ "$bad" -eq 0 ]; then
	echo "all examples behaved"
else
	echo "$bad example(s) did not behave"
fi
exit "$bad"
