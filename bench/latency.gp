# latency.gp - the latency percentiles of each server load, weft's green
# server beside the reference (nginx, redis-server) loaded the same way.
# Run by report.sh as
#   gnuplot -e "dir='RESULTS'; term='pngcairo'" latency.gp
# plot-latency.dat: index 0 a line per load and percentile, "x percentile
# green reference green-label reference-label" (ms, "-" where not
# measured); index 1 a line per load, "x header", x the middle of its four;
# index 2 one line, "least greatest green reference": the range of the
# latencies in index 0 and how many of each server's there are.
if (!exists("dir")) dir = "."
if (!exists("term")) term = "pngcairo"
if (term eq "pngcairo") {
  set terminal pngcairo size 1000,540 font "sans,11" noenhanced
} else {
  set terminal png size 1000,540 noenhanced
}
set output dir."/latency.png"
set datafile separator "\t"
set datafile missing "-"

set title "Latency percentiles, load generator on the same machine (log scale)"
set ylabel "latency"
set logscale y
set ytics ("1 µs" 1e-3, "10 µs" 1e-2, "100 µs" 0.1, "1 ms" 1, "10 ms" 10, \
  "100 ms" 100, "1 s" 1000, "10 s" 1e4)
# From a decade under the fastest bar (boxes rise from the bottom of a log
# axis) to well above the slowest: its label is written upwards from it.
stats dir."/plot-latency.dat" index 2 \
  using (lo = $1, hi = $2, ng = $3, nr = $4, 0) nooutput
set yrange [10 ** floor(log10(lo) - 0.3):10 ** ceil(log10(hi) + 1)]
set grid ytics
set style fill solid 0.85 border -1
set boxwidth 0.38
set xtics nomirror scale 0
set offsets 0.7, 0.7, 0, 0
# Each load's header on the top axis, over its four percentiles.
set link x2
set x2tics scale 0 font "sans,11"
set key below center horizontal Left reverse width -3

# A server's bars and their labels, column c of index 0 shifted by dx;
# left out when it has no latency at all (no reference installed, a load
# stalled on every green server), which would only make gnuplot warn.
f = dir."/plot-latency.dat"
bars(c, dx, colour, t) = sprintf("f index 0 using ($1 + %g):%d with boxes " \
  . "lc rgb \"%s\" title \"%s\", f index 0 using ($1 + %g):%d:%d with " \
  . "labels rotate by 90 left offset 0,0.4 font \"sans,8\" notitle, ", \
  dx, c, colour, t, dx, c, c + 2)
p = (ng > 0 ? bars(3, -0.2, "#4472c4", \
  "weft: servers/http, servers/kv --mode green") : "") \
  . (nr > 0 ? bars(4, 0.2, "#a5a5a5", \
  "reference: nginx, redis-server") : "")
# The percentiles under each load, its header on the top axis.
eval "plot " . p . "f index 0 using 1:(NaN):xtic(2) notitle, " \
  . "f index 1 using 1:(NaN):x2tic(2) axes x2y1 notitle"
