#!/bin/sh
# run.sh - runs every bench program, every workload in every mode (green
# threads, kernel threads, processes), then writes the report.
#
#   sh bench/run.sh full|quick [BUILDDIR]
#
# `make bench` and `make bench-quick` call it with the build directory, so
# it works in-tree and out of tree.  Progress goes to standard error; each
# program prints its own table on standard output as it goes (median, min
# and max over the repetitions) and appends name<TAB>value<TAB>unit lines.
# They are collected in BUILDDIR/bench/results/latest.tsv, and report.sh
# turns them into BUILDDIR/bench/results/REPORT.md (tables, and PNG plots
# made with gnuplot) and the summary printed at the end, also kept in
# BUILDDIR/bench/results/latest.txt.
#
# Before them, bench/alive_go.sh builds Go's runtime doing alive.1m's run,
# a reference that bench/mem runs in turns with its own (n/a without the
# go command).
#
# Last comes the server bench, bench/servers.sh: weft's servers under
# wrk, redis-benchmark and bench/echo_load, against nginx and redis-server
# when installed (about 90 s in full mode, 15 s in quick mode).
#
# A sample that fails is run again once, in a fresh process (bench.h);
# a server load that fails or passes its timeout is run again once against
# a fresh server (servers.sh).  A figure whose samples fail twice has
# stalled: the report shows it as STALLED with the reason, in a section of
# its own (a figure that lost only some samples is the median of the
# others, and listed there too), and this script names them at the end.
# The report also flags outliers: figures far from their usual range, with
# their raw samples (report.sh says how).
#
# Exit status: 1 if a program failed (it could not run at all: see
# bench.h) or a weft server failed or did not exit cleanly, or a figure is
# missing (quick mode must produce every name too).  A figure that misses
# its target is reported as MISS, and a stalled figure as STALLED, but
# neither fails the run (timings and loads on a shared CI machine are
# noisy), unless BENCH_STRICT=1.  Outliers never fail it.

set -u

mode=${1:-full}
builddir=${2:-.}
case $mode in
full) flag= ;;
quick) flag=--quick ;;
*)
	echo "usage: $0 full|quick [BUILDDIR]" >&2
	exit 2
	;;
esac

here=$(cd "$(dirname "$0")" && pwd)
bin=$builddir/bench
results=$builddir/bench/results
# Each program and what it measures, for the progress lines.  mem holds the
# million-thread run, the longest (about 45 s where a page fault costs
# 20-40 us, as on some virtual machines).
programs='machine:the machine: a system call, a page fault, a cache line between CPUs
switch:raw context switch, asm vs ucontext (and Boost.Context, a reference)
yield:green thread yield, and a mutex two green threads take in turns
chan:channel ping-pong between green threads
deadline:waits ended by a message, with and without a deadline, 1,000 waiting
spawn:green thread creation
task:start + wait in each mode (green, kernel thread, process)
handoff:ping-pong between kernel threads and between processes
msg:4 KiB messages between units in each mode
shm:shared-heap allocation against malloc
mem:memory per idle unit and scaling in each mode, a million green threads
idle:the CPU an idle runtime uses
preempt:preemption: a sleeper beside a spinner, one preemption, its overhead
mmswitch:one CPU handed between threads and between processes: the address-space switch
parallel:the same work on one CPU and on two: true parallelism'
nprog=$(($(printf '%s\n' "$programs" | wc -l) + 1)) # and the servers below

mkdir -p "$results" || exit 1
tsv=$results/latest.tsv.tmp
: >"$tsv" || exit 1

failed=
start=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
# The Go reference of alive.1m, for bench/mem to run in turns with weft's.
echo "bench: building the Go reference of alive.1m" >&2
if go_ref=$(sh "$here/alive_go.sh" "$mode" "$builddir" "$tsv" </dev/null); then
	BENCH_ALIVE_GO=$(printf '%s\n' "$go_ref" | sed -n 1p)
	BENCH_ALIVE_GO_VERSION=$(printf '%s\n' "$go_ref" | sed -n 2p)
	export BENCH_ALIVE_GO BENCH_ALIVE_GO_VERSION
else
	failed="$failed go"
fi
i=0
echo "bench: $mode run, $nprog programs, results in $results" >&2
while IFS= read -r line; do
	p=${line%%:*}
	what=${line#*:}
	i=$((i + 1))
	if [ ! -x "$bin/$p" ]; then
		echo "run.sh: $bin/$p is not built (run make first)" >&2
		failed="$failed $p"
		continue
	fi
	echo "bench: [$i/$nprog] $p: $what ($(($(date +%s) - start)) s so far)" >&2
	t0=$(date +%s)
	# $flag is empty or one word: leave it unquoted.  The programs read
	# nothing: keep them off this loop's standard input.
	# shellcheck disable=SC2086
	if ! "$bin/$p" $flag --tsv "$tsv" </dev/null; then
		failed="$failed $p"
		echo "bench: [$i/$nprog] $p FAILED" >&2
	fi
	echo "[$p: $(($(date +%s) - t0)) s]"
done <<END_OF_LIST
$programs
END_OF_LIST

# step NAME WHAT SCRIPT: one of the scripts that append to the same file
# after the programs, with its progress line and its time.
step() {
	i=$((i + 1))
	echo "bench: [$i/$nprog] $1: $2 ($(($(date +%s) - start)) s so far)" >&2
	t0=$(date +%s)
	if ! sh "$here/$3" "$mode" "$builddir" "$tsv" </dev/null; then
		failed="$failed $1"
		echo "bench: [$i/$nprog] $1 FAILED" >&2
	fi
	echo "[$1: $(($(date +%s) - t0)) s]"
}
# The server bench.
step servers "http, kv and echo under load, against nginx and redis-server" \
    servers.sh
mv "$tsv" "$results/latest.tsv"

echo "bench: writing the report ($(($(date +%s) - start)) s so far)" >&2
sh "$here/report.sh" "$mode" "$results" "$(($(date +%s) - start))" "$load0"
status=$?

strict=${BENCH_STRICT:-0}
# The stalls, named: those with no value, and those short of some samples.
stalled=$(awk -F'\t' '$1 !~ /^#/ && NF >= 3 && $2 == "stalled" {
	printf " %s", $1 }' "$results/latest.tsv")
short=$(awk -F'\t' '$1 == "#stalled" { printf " %s", $2 }' \
    "$results/latest.tsv")
if [ -n "$stalled$short" ]; then
	[ -n "$stalled" ] && echo "run.sh: STALLED (no value, see REPORT.md):$stalled" >&2
	[ -n "$short" ] && echo "run.sh: some samples stalled (median of the" \
	    "others):$short" >&2
	[ "$strict" = 1 ] || echo "run.sh: stalls do not fail the run" \
	    "(BENCH_STRICT=1 makes them)" >&2
fi

if [ -n "$failed" ]; then
	echo "run.sh: failed:$failed" >&2
	exit 1
fi
case $status in
0 | 5) ;;
4) [ "$strict" = 1 ] && exit 1 ;;
*) exit 1 ;;
esac
[ "$strict" = 1 ] && [ -n "$stalled$short" ] && exit 1
exit 0
