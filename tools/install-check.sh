#!/bin/sh
# install-check.sh BUILD-DIR [SCRATCH-DIR] - checks weft as installed.
#
# Runs "make install DESTDIR=SCRATCH/dest" in BUILD-DIR (a configured and
# built weft tree), checks that the library (shared and static), weft.h,
# weft.pc, the manual pages (weft(3) and one per call of the installed
# weft.h, each found by man and rendering without a warning) and the gdb
# extension are installed, builds examples/channel.c out of tree with
# "pkg-config --cflags --libs weft" against the installed copy
# (PKG_CONFIG_SYSROOT_DIR maps the configured prefix into the staging
# directory), once against the shared library and once against the static
# one, and runs both; builds examples/server.c the same way, asks it one
# line and stops it with SIGTERM (exit 0); builds and runs README.md's
# hello with the README's own commands (it must print 42); checks that the
# shared library exports weft_ symbols only, and that gdb finds the
# auto-load script under the name it derives from the library (when gdb is
# installed).  Finally it runs "make uninstall" and checks nothing but
# directories is left.
#
# SCRATCH-DIR (default: a new temporary directory, removed at the end) must
# be empty or absent.  Exit status 0 when everything passed, 1 otherwise.
# "make check-install" runs it on the build tree.

set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BUILD-DIR [SCRATCH-DIR]" >&2
  exit 2
fi
build=$(cd "$1" && pwd) || exit 1
if [ ! -f "$build/Makefile" ]; then
  echo "install-check: $build is not a configured build tree" >&2
  exit 1
fi
if [ $# -eq 2 ]; then
  scratch=$2
  keep=yes
  mkdir -p "$scratch" || exit 1
  scratch=$(cd "$scratch" && pwd)
  if [ -n "$(ls -A "$scratch")" ]; then
    echo "install-check: $scratch is not empty" >&2
    exit 1
  fi
else
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/weft-install.XXXXXX") || exit 1
  keep=no
fi
dest=$scratch/dest
srcdir=$(sed -n 's/^abs_top_srcdir = //p' "$build/Makefile")
MAKE=${MAKE:-make}
CC=${CC:-cc}
fails=0

cleanup() {
  [ "$keep" = no ] && rm -rf "$scratch"
}
trap cleanup EXIT

ok() { echo "install-check: ok: $*"; }
fail() {
  echo "install-check: FAIL: $*"
  fails=$((fails + 1))
}

echo "install-check: installing into $dest"
if ! $MAKE -C "$build" install DESTDIR="$dest" >"$scratch/install.log" 2>&1
then
  cat "$scratch/install.log"
  fail "make install"
  exit 1
fi

# Where things went: weft.pc sits in $libdir/pkgconfig.
pc=$(find "$dest" -name weft.pc -path '*/pkgconfig/*' | head -n 1)
if [ -z "$pc" ]; then
  fail "weft.pc is not installed"
  exit 1
fi
dlibdir=$(dirname "$(dirname "$pc")")
libdir=${dlibdir#"$dest"}
ok "weft.pc in ${pc#"$dest"}"

export PKG_CONFIG_PATH="$dlibdir/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$dest"
unset PKG_CONFIG_LIBDIR 2>/dev/null || true
cflags=$(pkg-config --cflags weft) || fail "pkg-config --cflags weft"
libs=$(pkg-config --libs weft) || fail "pkg-config --libs weft"
echo "install-check: pkg-config --cflags --libs weft: $cflags $libs"
incdir=$(echo " $cflags " | sed -n 's/.* -I\([^ ]*\) .*/\1/p')
[ -f "$incdir/weft.h" ] && ok "weft.h in ${incdir#"$dest"}" ||
  fail "weft.h is not where pkg-config --cflags points ($incdir)"

version=$(pkg-config --modversion weft)
hversion=$(printf '#include <weft.h>\nWEFT_VERSION_MAJOR.WEFT_VERSION_MINOR.WEFT_VERSION_PATCH\n' |
  $CC -E -P $cflags - 2>/dev/null | tail -n 1 | tr -d ' ')
[ "$version" = "$hversion" ] && ok "version $version (weft.pc and weft.h)" ||
  fail "weft.pc says version $version, weft.h $hversion"

shlib=$(ls "$dlibdir"/libweft.so.*.*.* 2>/dev/null | head -n 1)
[ -n "$shlib" ] && ok "shared library ${shlib#"$dest"}" ||
  fail "no shared library libweft.so.X.Y.Z in $libdir"
[ -f "$dlibdir/libweft.a" ] && ok "static library $libdir/libweft.a" ||
  fail "no static library libweft.a in $libdir"
[ -L "$dlibdir/libweft.so" ] || [ -f "$dlibdir/libweft.so" ] ||
  fail "no libweft.so link in $libdir"

man=$(find "$dest" -path '*/man3/weft.3' | head -n 1)
[ -n "$man" ] && ok "manual page ${man#"$dest"}" || fail "weft.3 is not installed"

# ---- manual pages of the calls -------------------------------------------
# Every call the installed weft.h and weft_testing.h declare (WEFT_EXTERN,
# or a static inline weft_ function) has a page that "man -M <installed
# man dir> -w <call>" finds, and every installed page renders without a warning (groff -ww,
# from the top of the man directory, where ".so man3/x.3" is found).
if [ -n "$man" ] && [ -f "$incdir/weft.h" ]; then
  mantop=$(dirname "$(dirname "$man")")
  calls=$(sed -n -e 's/^WEFT_EXTERN[^(]*[ *]\(weft_[a-z][a-z_0-9]*\)(.*/\1/p' \
    -e 's/^static inline [^(]*[ *]\(weft_[a-z][a-z_0-9]*\)(.*/\1/p' \
    "$incdir/weft.h" "$incdir/weft_testing.h" | sort -u)
  if ! command -v man >/dev/null 2>&1; then
    fail "man is not installed (man-db), so the call pages cannot be looked up"
  else
    nocall=
    ncalls=0
    for c in $calls; do
      ncalls=$((ncalls + 1))
      man -M "$mantop" -w "$c" >/dev/null 2>&1 || nocall="$nocall $c"
    done
    if [ "$ncalls" -eq 0 ]; then
      fail "no call found in the installed weft.h and weft_testing.h"
    elif [ -z "$nocall" ]; then
      ok "man finds a page for each of the $ncalls calls of weft.h and weft_testing.h"
    else
      fail "man -M ${mantop#"$dest"} finds no page for:$nocall"
    fi
  fi
  if command -v groff >/dev/null 2>&1; then
    badpages=
    for p in "$mantop"/man3/*.3; do
      out=$(cd "$mantop" && groff -man -ww -z "man3/${p##*/}" 2>&1)
      [ -z "$out" ] || { badpages="$badpages ${p##*/}"; echo "$out"; }
    done
    [ -z "$badpages" ] && ok "every installed page renders without a warning" ||
      fail "pages that render with warnings:$badpages"
  else
    fail "groff is not installed, so the pages cannot be checked"
  fi
fi
# ---- end of the manual pages of the calls --------------------------------

gdbscript=
if [ -n "$shlib" ]; then
  gdbscript=$(find "$dest" -path "*/gdb/auto-load$libdir/$(basename "$shlib")-gdb.py" | head -n 1)
  [ -n "$gdbscript" ] && ok "gdb auto-load script ${gdbscript#"$dest"}" ||
    fail "no gdb auto-load script $(basename "$shlib")-gdb.py under share/gdb/auto-load$libdir"
fi

# Exports: weft_ symbols and nothing else.
if [ -n "$shlib" ]; then
  nm -D --defined-only "$shlib" | awk '{ print $NF }' | sort >"$scratch/exports"
  n=$(wc -l <"$scratch/exports")
  grep -v '^weft_' "$scratch/exports" >"$scratch/foreign"
  if [ -s "$scratch/foreign" ]; then
    fail "the shared library exports symbols other than weft_*:"
    sed 's/^/  /' "$scratch/foreign"
  elif [ "$n" -eq 0 ]; then
    fail "the shared library exports nothing"
  else
    ok "the shared library exports $n symbols, all weft_*"
  fi
  # Every function weft.h and weft_testing.h declare is exported.
  sed -n 's/^WEFT_EXTERN[^(]*[ *]\(weft_[a-z_0-9]*\)(.*/\1/p' \
    "$incdir/weft.h" "$incdir/weft_testing.h" | sort -u >"$scratch/declared"
  missing=$(comm -23 "$scratch/declared" "$scratch/exports")
  [ -z "$missing" ] && ok "every call declared in weft.h and weft_testing.h is exported" ||
    fail "declared in weft.h or weft_testing.h but not exported: $missing"
fi

# An out-of-tree program, built as a user would.
mkdir -p "$scratch/prog"
cp "$srcdir/examples/channel.c" "$scratch/prog/channel.c"
cd "$scratch/prog" || exit 1
if $CC -std=gnu11 -Wall -Wextra -Werror -g -o channel channel.c $cflags \
     $libs -Wl,-rpath,"$dlibdir" 2>"$scratch/cc.log"; then
  ok "built examples/channel.c with pkg-config (shared)"
  if ./channel >"$scratch/run.log" 2>&1 && grep -q 'received 42' "$scratch/run.log"
  then
    ok "it runs"
  else
    cat "$scratch/run.log"
    fail "the program built against the installed library does not run"
  fi
  ldd ./channel | grep -q "$dlibdir/libweft.so" ||
    fail "the program is not linked with the installed libweft.so"
else
  cat "$scratch/cc.log"
  fail "cannot build examples/channel.c against the installed library"
fi
slibs=$(pkg-config --static --libs weft | sed 's/-lweft\b//')
if $CC -std=gnu11 -Wall -Wextra -Werror -g -o channel-static channel.c \
     $cflags "$dlibdir/libweft.a" $slibs 2>"$scratch/cc.log"; then
  ok "built examples/channel.c against libweft.a"
  ./channel-static 2>&1 | grep -q 'received 42' && ok "it runs" ||
    fail "the program linked with libweft.a does not run"
else
  cat "$scratch/cc.log"
  fail "cannot link examples/channel.c with libweft.a"
fi
# A fully static program (libc, jemalloc and weft all linked in): the
# static libraries' own needs (jemalloc's -lm) must come from
# pkg-config --static.
if $CC -static -std=gnu11 -Wall -Wextra -Werror -g -o channel-full-static \
     channel.c $cflags "$dlibdir/libweft.a" $slibs 2>"$scratch/cc.log"; then
  ok "built a fully static examples/channel.c with pkg-config --static --libs"
  ./channel-full-static 2>&1 | grep -q 'received 42' && ok "it runs" ||
    fail "the fully static program does not run"
else
  cat "$scratch/cc.log"
  fail "cannot link examples/channel.c fully static with pkg-config --static"
fi

# examples/server.c, the server a user would start from, out of tree
# the same way: started on a free port, asked one line (bash's /dev/tcp
# is the client), and stopped with SIGTERM, after which it must exit 0.
cp "$srcdir/examples/server.c" "$scratch/prog/server.c"
if $CC -std=gnu11 -Wall -Wextra -Werror -g -o server server.c $cflags \
     $libs -Wl,-rpath,"$dlibdir" 2>"$scratch/cc.log"; then
  ok "built examples/server.c with pkg-config"
  # timeout passes SIGTERM on, and kills a server that would not stop.
  timeout -k 5 30 ./server 0 >"$scratch/server.log" 2>&1 &
  srv_pid=$!
  srv_port= srv_tries=0
  while [ -z "$srv_port" ] && [ "$srv_tries" -lt 100 ] &&
    kill -0 "$srv_pid" 2>/dev/null; do
    sleep 0.1
    srv_tries=$((srv_tries + 1))
    srv_port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' \
      "$scratch/server.log")
  done
  srv_answer=
  if [ -n "$srv_port" ]; then
    srv_answer=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
      printf "hello, weft\n" >&3 && IFS= read -r line <&3 &&
      printf "%s\n" "$line"' client "$srv_port")
  fi
  kill -TERM "$srv_pid" 2>/dev/null
  wait "$srv_pid"
  srv_status=$?
  if [ -z "$srv_port" ]; then
    cat "$scratch/server.log"
    fail "the server built against the installed library did not listen"
  elif [ "$srv_answer" != "HELLO, WEFT" ]; then
    cat "$scratch/server.log"
    fail "the server answered '$srv_answer' to 'hello, weft'"
  elif [ "$srv_status" -ne 0 ]; then
    cat "$scratch/server.log"
    fail "the server exited with status $srv_status after SIGTERM"
  else
    ok "it answers, and exits 0 on SIGTERM"
  fi
else
  cat "$scratch/cc.log"
  fail "cannot build examples/server.c against the installed library"
fi

# README.md's hello, built as the README says: its hello.c block, and its
# hello-build block run as it is (cc and pkg-config --cflags --libs weft,
# then ./hello), in a directory of its own.  The library is found through
# weft.pc's rpath when configure put one there (pkg-config maps it into the
# staging directory as it does -L); else through LD_LIBRARY_PATH, as
# ldconfig would find it in a system prefix.
mkdir -p "$scratch/hello"
readme_block() {
  sh "$srcdir/tests/readme_block.sh" "$1" "$srcdir/README.md" \
    >"$scratch/hello/$2" 2>"$scratch/hello.log"
}
if readme_block hello.c hello.c && readme_block hello-build build.sh; then
  hello_ld=${LD_LIBRARY_PATH-}
  case " $libs " in
    *" -Wl,-rpath,$dlibdir "*) how="weft.pc's rpath" ;;
    *) hello_ld=$dlibdir${hello_ld:+:$hello_ld} how=LD_LIBRARY_PATH ;;
  esac
  if (cd "$scratch/hello" && LD_LIBRARY_PATH=$hello_ld sh -e build.sh) \
       >"$scratch/hello.log" 2>&1 &&
     [ "$(cat "$scratch/hello.log")" = 42 ]; then
    ok "README.md's hello builds with its own commands and prints 42 (libweft.so found by $how)"
    LD_LIBRARY_PATH=$hello_ld ldd "$scratch/hello/hello" |
      grep -q "$dlibdir/libweft.so" ||
      fail "README.md's hello is not linked with the installed libweft.so"
  else
    sed 's/^/  | /' "$scratch/hello.log"
    fail "README.md's hello, built and run as the README says, does not print 42"
  fi
else
  cat "$scratch/hello.log"
  fail "README.md has no hello.c or hello-build block"
fi

# gdb derives the auto-load script's name from the real path of the
# library: scripts-directory + realpath + "-gdb.py".  Point a scratch
# scripts-directory at the installed script under the name gdb will look
# for, and check that the commands appear.
if [ -n "$gdbscript" ] && command -v gdb >/dev/null 2>&1; then
  real=$(readlink -f "$shlib")
  mkdir -p "$scratch/autoload$(dirname "$real")"
  ln -s "$gdbscript" "$scratch/autoload$real-gdb.py"
  gdb -nx -batch -iex "set auto-load scripts-directory $scratch/autoload" \
    -iex "set auto-load safe-path /" -ex 'set disable-randomization off' \
    -ex 'break weft_chan_recv' -ex run -ex 'weft threads' \
    ./channel </dev/null >"$scratch/gdb.log" 2>&1
  if grep -Eq '^ +[0-9]+ +"" +(runnable|running|parked)' "$scratch/gdb.log"; then
    ok "gdb auto-loads the extension with the library"
  elif grep -q 'Operation not permitted' "$scratch/gdb.log"; then
    echo "install-check: skipped the gdb check: ptrace is not allowed"
  else
    sed 's/^/  | /' "$scratch/gdb.log"
    fail "gdb did not auto-load the extension"
  fi
fi
cd "$scratch" || exit 1

if $MAKE -C "$build" uninstall DESTDIR="$dest" >"$scratch/uninstall.log" 2>&1
then
  left=$(find "$dest" ! -type d)
  [ -z "$left" ] && ok "make uninstall removes every file" ||
    fail "left after make uninstall: $left"
else
  cat "$scratch/uninstall.log"
  fail "make uninstall"
fi

if [ "$fails" -ne 0 ]; then
  echo "install-check: $fails check(s) failed"
  exit 1
fi
echo "install-check: all passed"
