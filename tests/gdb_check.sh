#!/bin/sh
# gdb_check.sh - checks the gdb extension (tools/weft-gdb.py) on
# tests/gdb_target: "weft threads" must list its four parked green threads
# with the right wait reasons and its running one, "weft bt" must show the
# function each parked thread blocked in and leave the registers exactly as
# they were (the program then runs to its end), and "weft bt" of the
# running thread must name the kernel thread to select instead.  Linked
# with the shared libweft, the program also has a preempted thread,
# "gdb-spin" (where weft preempts: the program says, gdb_target_spins):
# listed with the kernel thread that keeps it, and "weft bt" shows its
# stack through the signal frame.
#
# Run by "make check" from the top of the build tree; or by hand:
# sh SRC/tests/gdb_check.sh from the top of a build tree.  The extension is
# the one the build made there (from tools/weft-gdb.py.in).  Exit status:
# 0 passed, 77 skipped (no gdb, or the system does not let gdb trace), 1
# failed.

script=tools/weft-gdb.py

if ! command -v gdb >/dev/null 2>&1; then
  echo "gdb_check: SKIP: gdb is not installed"
  exit 77
fi
if ! gdb -nx -batch -ex 'python import gdb' >/dev/null 2>&1; then
  echo "gdb_check: SKIP: this gdb has no Python"
  exit 77
fi
for f in "$script" tests/gdb_target tests/gdb_target_static; do
  if [ ! -f "$f" ]; then
    echo "gdb_check: FAIL: $f is missing (run from the top of the build tree)"
    exit 1
  fi
done
to=
command -v timeout >/dev/null 2>&1 && to="timeout 60"

out=$(mktemp "${TMPDIR:-/tmp}/weft-gdb.XXXXXX") || exit 1
trap 'rm -f "$out" "$out.sec" "$out.sec2"' EXIT
fails=0

fail() {
  echo "gdb_check: FAIL ($what): $*"
  fails=$((fails + 1))
}

# expect_line REGEX: some line of the output matches (extended regex).
expect_line() {
  grep -Eq -- "$1" "$out" || fail "no line matches: $1"
}

# between START END: the lines strictly between two marker lines.
between() {
  sed -n "/^$1\$/,/^$2\$/p" "$out" | sed '1d;$d'
}

# run WHAT PROGRAM [LIBTOOL-MODE]: debugs PROGRAM and checks the output.
run() {
  what=$1
  prog=$2
  lt=$3
  set --
  [ -n "$lt" ] && set -- ./libtool --mode=execute
  regs='info registers rip rsp rbp rbx r12 r13 r14 r15'
  # -nx and no auto-load: only the extension under test is loaded.
  $to "$@" gdb -nx -batch \
    -iex 'set auto-load python-scripts off' \
    -ex 'set pagination off' -ex 'set confirm off' -ex 'set width 0' \
    -ex 'set disable-randomization off' -ex 'set print thread-events off' \
    -x "$script" \
    -ex 'break gdb_target_stop' -ex run \
    -ex 'echo ==spins\n' -ex 'output gdb_target_spins' -ex 'echo \n==end\n' \
    -ex 'echo ==threads\n' -ex 'weft threads' -ex 'echo ==end\n' \
    -ex 'echo ==regs-before\n' -ex "$regs" -ex 'echo ==end\n' \
    -ex 'echo ==bt-chan\n' -ex 'eval "weft bt %llu", gdb_target_ids[0]' \
    -ex 'echo ==end\n' \
    -ex 'echo ==bt-mutex\n' -ex 'eval "weft bt %llu", gdb_target_ids[1]' \
    -ex 'echo ==end\n' \
    -ex 'echo ==bt-sleep\n' -ex 'weft bt park-sleep' -ex 'echo ==end\n' \
    -ex 'echo ==bt-read\n' -ex 'eval "weft bt %llu 30", gdb_target_ids[3]' \
    -ex 'echo ==end\n' \
    -ex 'echo ==bt-spin\n' -ex 'weft bt gdb-spin' -ex 'echo ==end\n' \
    -ex 'echo ==bt-running\n' -ex 'eval "weft bt %llu", gdb_target_ids[5]' \
    -ex 'echo ==end\n' \
    -ex 'echo ==regs-after\n' -ex "$regs" -ex 'echo ==end\n' \
    -ex 'delete' -ex continue \
    "$prog" </dev/null >"$out" 2>&1
  rc=$?

  if grep -Eq 'ptrace: Operation not permitted|Could not trace the inferior|Cannot create process: Operation not permitted' "$out"; then
    echo "gdb_check: SKIP: this system does not let gdb trace processes"
    sed 's/^/  | /' "$out"
    exit 77
  fi

  echo "=== gdb session ($what): exit status $rc"
  sed 's/^/  | /' "$out"

  [ "$rc" -eq 0 ] || fail "gdb exited with status $rc"
  # Whether the program has a preempted thread (weft preempts there).
  spin=$(between ==spins ==end | tr -d ' \n')
  [ "$spin" = 1 ] || [ "$spin" = 0 ] || fail "gdb_target_spins: got '$spin'"
  [ "$spin" = 1 ] || spin=
  # weft threads: four parked with their reasons, one running.
  between ==threads ==end > "$out.sec"
  for want in 'park-chan +parked +[0-9]+ +chan$' \
              'park-mutex +parked +[0-9]+ +mutex$' \
              'park-sleep +parked +[0-9]+ +sleep$' \
              'park-read +parked +[0-9]+ +io read$' \
              'gdb-stop +running +0 +\(gdb thread [0-9]+ \(LWP [0-9]+\)\)$'; do
    grep -Eq -- "$want" "$out.sec" || fail "weft threads: no line matches: $want"
  done
  if [ -n "$spin" ]; then
    grep -Eq -- 'gdb-spin +runnable +0 +preempted \(gdb thread [0-9]+ \(LWP [0-9]+\)\)$' "$out.sec" ||
      fail "weft threads: gdb-spin is not listed as preempted"
    grep -Eq -- '^6 green threads: 4 parked, 1 runnable, 1 running$' "$out.sec" ||
      fail "weft threads: not 6 green threads, 4 parked, 1 runnable, 1 running"
    between ==bt-spin ==end > "$out.sec"
    grep -q '<signal handler called>' "$out.sec" ||
      fail "weft bt of gdb-spin: no signal frame"
    grep -Eq -- '^#[0-9]+ .*spin_until_stopped \(' "$out.sec" ||
      fail "weft bt of gdb-spin: no frame in spin_until_stopped"
  else
    grep -Eq -- '^5 green threads: 4 parked, 1 running$' "$out.sec" ||
      fail "weft threads: not 5 green threads, 4 parked, 1 running"
  fi
  # weft bt: the function that parked, and the public call it was in.
  for c in 'chan park_on_chan weft_chan_recv' \
           'mutex park_on_mutex weft_mutex_lock' \
           'sleep park_on_sleep weft_sleep(_until)?' \
           'read park_on_read weft_read'; do
    set -- $c
    between "==bt-$1" ==end > "$out.sec"
    for fn in "$2" "$3"; do
      grep -Eq -- "^#[0-9]+ .*[ :]$fn \(" "$out.sec" ||
        grep -Eq -- "^#[0-9]+ +$fn \(" "$out.sec" ||
        fail "weft bt of park-$1: no frame in $fn"
    done
    grep -q 'Python Exception\|Error occurred in Python' "$out.sec" &&
      fail "weft bt of park-$1: Python error"
  done
  between ==bt-running ==end > "$out.sec"
  grep -Eq 'is running on worker 0, gdb thread [0-9]+ \(LWP [0-9]+\): select it' \
    "$out.sec" || fail "weft bt of the running thread: no hint to select its worker"
  # The registers are back exactly, and the program runs to its end.
  between ==regs-before ==end > "$out.sec"
  between ==regs-after ==end > "$out.sec2"
  if [ ! -s "$out.sec" ] || ! cmp -s "$out.sec" "$out.sec2"; then
    fail "registers differ after weft bt"
    diff "$out.sec" "$out.sec2"
  fi
  expect_line '^gdb_target: ok$'
  expect_line 'exited normally'
  rm -f "$out.sec" "$out.sec2"
}

run "linked with libweft.la" tests/gdb_target libtool
run "linked statically" tests/gdb_target_static

if [ "$fails" -ne 0 ]; then
  echo "gdb_check: $fails check(s) failed"
  exit 1
fi
echo "gdb_check: all passed"
exit 0
