#!/bin/sh
# headers_check.sh - every internal header of runtime/ compiles on its own:
# a file that includes config.h (as every runtime source does first) and
# then one header must build with the project's warnings as errors.  A header that leans on what its
# includers happened to include first breaks the next file that includes
# it alone.  Run by make check (CC and WEFT_HDR_CFLAGS come from the
# makefile); exit 0 passes, 1 fails and names each header that failed.

cc=${CC:-cc}
src=${srcdir:-.}
failed=
n=0
for h in "$src"/runtime/*.h; do
	n=$((n + 1))
	name=$(basename "$h")
	# shellcheck disable=SC2086 # the flags are words
	if ! printf '#include "config.h"\n#include "%s"\n' "$name" |
	    $cc -x c -fsyntax-only -D_GNU_SOURCE -I"$src/include" \
	        -iquote "$src/runtime" -I. ${WEFT_HDR_CFLAGS:-} -Werror - \
	        2>"headers_check.$name.err"; then
		echo "runtime/$name does not compile on its own:"
		cat "headers_check.$name.err"
		failed="$failed $name"
	fi
	rm -f "headers_check.$name.err"
done
if [ -n "$failed" ]; then
	echo "headers_check: failed:$failed"
	exit 1
fi
echo "headers_check: all $n headers of runtime/ compile on their own"
