#!/bin/sh
# report.sh - turns the figures of one bench run into REPORT.md (tables and
# PNG plots) and the plain-text summary latest.txt.
#
#   sh bench/report.sh full|quick RESULTS_DIR [SECONDS [LOAD_BEFORE]]
#
# SECONDS is how long the run took, LOAD_BEFORE the load average before it
# (both only quoted in the report).
# RESULTS_DIR holds latest.tsv (name<TAB>value<TAB>unit, written by the
# bench programs); REPORT.md, latest.txt, plot-*.dat and *.png are written
# beside it.  The gnuplot scripts are the bench/*.gp files next to this
# script.  Without gnuplot the plots are skipped, and REPORT.md says so;
# BENCH_NO_PLOTS=1 skips them too (check_report.sh's made-up figures are
# nothing to plot).
# Only POSIX sh and awk are needed besides.
#
# The server bench (servers.sh) also writes lines "name<TAB>n/a<TAB>unit<TAB>
# why" for figures it could not measure because a tool or reference server
# is not installed: they show as n/a and do not count as missing; and lines
# "#note<TAB>text", quoted in the report's Servers section.
#
# Stalls (see bench/bench.h): a figure whose every sample failed twice, or
# whose load timed out twice, is written "name<TAB>stalled<TAB>unit<TAB>
# why".  It shows as STALLED in the tables, is listed with its reason in
# the report's "Stalled and retried" section and in the summary, and counts
# as reported, not missing.  "#stalled<TAB>name<TAB>K of N samples<TAB>why"
# (a figure measured without some of its samples) and "#retried<TAB>name<TAB>
# K of N samples<TAB>why" (samples that failed once) are listed there too.
#
# Outliers: "#samples<TAB>name<TAB>v1,v2,..." lines give each figure's raw
# samples.  A figure is flagged as an outlier, and listed with its samples
# in the report's "Outliers" section, when its samples disagree wildly,
# when a weft server's figure is far from the reference server's in the
# same run, or when it is far from its own history: RESULTS_DIR/history.tsv
# keeps the figures of past runs ("when<TAB>run<TAB>mode<TAB>name<TAB>value",
# a run named by the checksum of its latest.tsv; each run is added once,
# and the last 30 are kept).  The rules and their thresholds are in the
# awk program below.  Outliers never fail the run.
#
# Plot points: "#series<TAB>name<TAB>x:y,x:y,..." lines carry a program's
# raw points for a plot, not figures.  bench/preempt writes its sleeper's
# wakes so (preempt.wakes.on and .off: when each was due and how late it
# came, in ms), which become plot-preempt.dat and preempt.png; without
# them that plot is left out.
#
# Prints latest.txt.  Exit status: 0; 3 if a figure is missing (every name
# of the catalogue below must be there, in quick mode too, except those
# marked "full only" and those reported n/a or stalled); else 4 if a figure
# misses its target; else 5 if a figure or some samples stalled.

set -u

mode=${1:-full}
results=${2:-bench/results}
secs=${3:-?}
load0=${4:-?}
here=$(cd "$(dirname "$0")" && pwd)
tsv=$results/latest.tsv
report=$results/REPORT.md
summary=$results/latest.txt

if [ ! -r "$tsv" ]; then
	echo "report.sh: $tsv: no figures" >&2
	exit 1
fi

# The catalogue of figures (every figure a run must produce), the targets
# that compare two figures, the usual ranges of the servers' figures and
# the explainer's claims are data: bench/figures.txt, ratios.txt, refs.txt
# and claims.txt, each of which says its format.
data() { grep -v '^#' "$here/$1"; }
catalogue=$(data figures.txt) || exit 1
ratios=$(data ratios.txt) || exit 1
refs=$(data refs.txt) || exit 1
claims=$(data claims.txt) || exit 1

# The machine, for the report's first lines.
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?')
memtotal=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
kernel="$(uname -s) $(uname -r) $(uname -m)"
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
when=$(date -u '+%Y-%m-%d %H:%M UTC')

if [ "${BENCH_NO_PLOTS:-0}" = 1 ]; then
	plots=off
	term=none
elif command -v gnuplot >/dev/null 2>&1; then
	plots=yes
	if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
		term=pngcairo
	else
		term=png
	fi
else
	plots=no
	term=none
fi

rm -f "$results"/plot-*.dat "$results"/*.png "$results/.status" \
    "$results/history.new"

# This run in the history: named by its figures, so that writing the
# report again does not count the run twice.
history=$results/history.tsv
run=$(cksum <"$tsv" | cut -d' ' -f1)
stamp=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
[ -f "$history" ] || : >"$history" || exit 1

awk -F'\t' -v mode="$mode" -v secs="$secs" -v cat="$catalogue" \
    -v ratios="$ratios" -v refs="$refs" -v claims="$claims" \
    -v cpu="$cpu" -v ncpu="$ncpu" \
    -v memtotal="$memtotal" -v kernel="$kernel" -v load="$load" \
    -v load0="$load0" -v when="$when" -v plots="$plots" -v hist="$history" \
    -v run="$run" -v stamp="$stamp" \
    -v dir="$results" -v report="$report" -v summary="$summary" \
    -f "$here/report.awk" "$history" "$tsv"

status=$(cat "$results/.status" 2>/dev/null || echo 1)
rm -f "$results/.status"

# The history keeps the last 30 runs: enough for the median of the last 5
# per mode, with room for both modes.
if [ -s "$results/history.new" ]; then
	cat "$results/history.new" >>"$history"
	awk -F'\t' 'NR == FNR { if (!($2 in seen)) { seen[$2] = 1; ids[++n] = $2 }
	    next }
	FNR == 1 { for (i = n - 29; i <= n; i++) if (i > 0) keep[ids[i]] = 1 }
	$2 in keep' "$history" "$history" >"$history.tmp" &&
	    mv "$history.tmp" "$history"
fi
rm -f "$results/history.new"

if [ "$plots" = yes ]; then
	failed=
	for gp in create handoff memory talk scale; do
		if ! gnuplot -e "dir='$results'; term='$term'" "$here/$gp.gp" \
		    2>"$results/gnuplot-$gp.log"; then
			failed="$failed $gp"
			sed 's/^/  /' "$results/gnuplot-$gp.log" >&2
		fi
		[ -s "$results/gnuplot-$gp.log" ] || rm -f "$results/gnuplot-$gp.log"
	done
	# The servers plot: one bar per server and mode, coloured by load,
	# references in grey; the latency plot: the percentiles of each load,
	# weft's green server beside the reference; the preemption plot: each
	# wake of bench/preempt's sleeper.  Each only when its figures were
	# measured.
	for gp in servers latency preempt; do
		[ -s "$results/plot-$gp.dat" ] || continue
		if ! gnuplot -e "dir='$results'; term='$term'" \
		    "$here/$gp.gp" 2>"$results/gnuplot-$gp.log"; then
			failed="$failed $gp"
			sed 's/^/  /' "$results/gnuplot-$gp.log" >&2
		fi
		[ -s "$results/gnuplot-$gp.log" ] ||
		    rm -f "$results/gnuplot-$gp.log"
	done
	if [ -n "$failed" ]; then
		echo "report.sh: gnuplot failed for:$failed" >&2
		printf '\n**Plots that failed** (see gnuplot-*.log):%s\n' \
		    "$failed" >>"$report"
		status=1
	fi
elif [ "$plots" = no ]; then
	echo "report.sh: gnuplot not found: plots skipped (install gnuplot-nox)" >&2
fi

cat "$summary"
echo "report: $report"
exit "$status"
