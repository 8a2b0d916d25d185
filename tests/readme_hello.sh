#!/bin/sh
# readme_hello.sh - the hello program of README.md ("Use weft in your
# program"), taken from the README as it is printed there (the block
# marked hello.c, see tests/readme_block.sh), compiles with -Wall -Wextra
# -Werror against this build tree's weft.h and libweft, runs, and prints
# 42 and nothing else.  tools/install-check.sh builds the same block
# against an installed weft with the README's pkg-config command.
#
# Run by "make check" from the top of the build tree (srcdir, CC and
# WEFT_HDR_CFLAGS, weft's own C flags, come from the makefile); or by
# hand, from the top of a build tree: srcdir=SRC sh SRC/tests/readme_hello.sh
# Exit status 0 passed, 1 failed.

src=${srcdir:-.}
cc=${CC:-cc}
to=
command -v timeout >/dev/null 2>&1 && to="timeout 60"

fail() {
  echo "readme_hello: FAIL: $*"
  exit 1
}

for f in libtool libweft.la; do
  [ -f "$f" ] || fail "$f is missing (run from the top of the build tree)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-readme.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

sh "$src/tests/readme_block.sh" hello.c "$src/README.md" >"$tmp/hello.c" ||
  fail "README.md has no hello.c block to build"

# libtool links against the uninstalled libweft.la (shared or static, as
# configured) and makes $tmp/hello a wrapper that runs the real program
# with this build's library.  -ljemalloc as weft.pc gives it.
# shellcheck disable=SC2086 # the flags are words
if ! ./libtool --mode=link --tag=CC $cc ${WEFT_HDR_CFLAGS:-} \
    -Wall -Wextra -Werror -I"$src/include" -o "$tmp/hello" "$tmp/hello.c" \
    libweft.la -ljemalloc >"$tmp/cc.log" 2>&1; then
  cat "$tmp/cc.log"
  echo "the program, as README.md prints it:"
  cat -n "$tmp/hello.c"
  fail "README.md's hello does not compile"
fi

$to "$tmp/hello" >"$tmp/out" 2>"$tmp/err"
status=$?
cat "$tmp/out" "$tmp/err"
[ "$status" -eq 0 ] || fail "README.md's hello exited with status $status"
[ "$(cat "$tmp/out")" = 42 ] ||
  fail "README.md's hello printed something other than 42"
echo "readme_hello: README.md's hello compiles and prints 42"
