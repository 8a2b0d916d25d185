#!/bin/sh
# run.sh - runs every bench program and prints one summary table, with the
# targets beside the figures.
#
#   sh bench/run.sh full|quick [BUILDDIR]
#
# `make bench` and `make bench-quick` call it with the build directory, so
# it works in-tree and out of tree.  Each program prints its own table as
# it goes (median, min and max over the repetitions) and appends
# name<TAB>value<TAB>unit lines; they are collected in
# BUILDDIR/bench/results/latest.tsv, and the summary below is also kept in
# BUILDDIR/bench/results/latest.txt.
#
# Exit status: 1 if a program failed or a figure with a target is missing.
# A figure that misses its target is reported as MISS but does not fail the
# run (timings on a shared CI machine are noisy), unless BENCH_STRICT=1.

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

bin=$builddir/bench
results=$builddir/bench/results
programs="switch yield chan spawn mem idle"

mkdir -p "$results" || exit 1
tsv=$results/latest.tsv.tmp
: >"$tsv" || exit 1

failed=
start=$(date +%s)
for p in $programs; do
	if [ ! -x "$bin/$p" ]; then
		echo "run.sh: $bin/$p is not built (run make first)" >&2
		failed="$failed $p"
		continue
	fi
	t0=$(date +%s)
	# $flag is empty or one word: leave it unquoted.
	# shellcheck disable=SC2086
	if ! "$bin/$p" $flag --tsv "$tsv"; then
		failed="$failed $p"
	fi
	echo "[$p: $(($(date +%s) - t0)) s]"
done
mv "$tsv" "$results/latest.tsv"

# name, comparison, target, unit.  The order is the order of the summary.
targets='switch.asm <= 6 ns
switch.ucontext - - ns
switch.speedup >= 40 x
yield.green <= 15 ns
chan.pingpong.green.local <= 30 ns
chan.pingpong.green.cross - - ns
spawn_join.green <= 60 ns
spawn.1m.green <= 280 ms
spawn.1m.green.rss <= 80 MiB
mem.idle.green <= 4.5 KiB
alive.1m.green >= 1 bool
idle.cpu < 1 %'

# What quick mode changes, for the note column.
quick_notes='spawn.1m.green 100k spawns, time x10
spawn.1m.green.rss 100k spawns
mem.idle.green 10k threads
alive.1m.green 100k threads
alive.1m.green.ms 100k threads
alive.1m.green.rss 100k threads
idle.cpu over 0.5 s'

summary=$results/latest.txt
{
	echo
	echo "weft bench summary: $mode mode, $(date -u '+%Y-%m-%d %H:%M UTC')," \
		"$(uname -m), $(getconf _NPROCESSORS_ONLN) CPUs," \
		"$(($(date +%s) - start)) s, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
	if [ "$mode" = quick ]; then
		echo "quick mode: smaller counts and 3 runs; indicative figures only"
	fi
	awk -v mode="$mode" -v tg="$targets" -v qn="$quick_notes" '
	BEGIN {
		FS = " "
		nq = split(qn, ql, "\n")
		for (i = 1; i <= nq; i++) {
			k = ql[i]; sub(/ .*/, "", k)
			v = ql[i]; sub(/^[^ ]* /, "", v)
			qnote[k] = v
		}
		n = split(tg, tl, "\n")
		for (i = 1; i <= n; i++) {
			split(tl[i], w, " ")
			order[i] = w[1]; op[w[1]] = w[2]; tgt[w[1]] = w[3]
			tunit[w[1]] = w[4]
		}
	}
	{
		split($0, f, "\t")
		val[f[1]] = f[2]; unit[f[1]] = f[3]
		if (!(f[1] in op)) { extra[++ne] = f[1] }
	}
	function row(name,    v, t, st, note) {
		note = ""
		if (mode == "quick")
			note = (name in qnote) ? "quick: " qnote[name] : "quick"
		if (!(name in val)) {
			printf "%-34s %12s %-5s %-9s %-7s %s\n", name, "-", \
			    tunit[name], (op[name] == "-" ? "" : op[name] " " tgt[name]), \
			    "MISSING", note
			missing++
			return
		}
		v = val[name] + 0
		t = ""
		st = "-"
		if ((name in op) && op[name] != "-") {
			t = op[name] " " tgt[name]
			if (op[name] == "<=") st = (v <= tgt[name] + 0) ? "PASS" : "MISS"
			else if (op[name] == "<") st = (v < tgt[name] + 0) ? "PASS" : "MISS"
			else if (op[name] == ">=") st = (v >= tgt[name] + 0) ? "PASS" : "MISS"
			if (st == "MISS") misses++
		}
		printf "%-34s %12s %-5s %-9s %-7s %s\n", name, val[name], \
		    unit[name], t, st, note
	}
	END {
		printf "%-34s %12s %-5s %-9s %-7s %s\n", "name", "value", "unit", \
		    "target", "status", "note"
		for (i = 1; i <= n; i++) row(order[i])
		for (i = 1; i <= ne; i++) row(extra[i])
		printf "\n%d missing, %d below target\n", missing, misses
		exit(missing ? 3 : misses ? 4 : 0)
	}' "$results/latest.tsv"
	echo $? >"$results/.status"
} | tee "$summary"

status=$(cat "$results/.status")
rm -f "$results/.status"
echo "results: $results/latest.tsv, $summary"

if [ -n "$failed" ]; then
	echo "run.sh: failed:$failed" >&2
	exit 1
fi
case $status in
3) exit 1 ;;
4) [ "${BENCH_STRICT:-0}" = 1 ] && exit 1 ;;
esac
exit 0
