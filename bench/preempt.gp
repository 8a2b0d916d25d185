# preempt.gp - how late a green thread sleeping 1 ms at a time wakes
# beside one that computes without yielding, one worker (bench/preempt):
# every wake of every sample, with preemption on (10 ms slice) and off.
# Run by report.sh as
#   gnuplot -e "dir='RESULTS'; term='pngcairo'" preempt.gp
# plot-preempt.dat: index 0 on, index 1 off; each line "due late", in ms
# (due: since the spinner started).
if (!exists("dir")) dir = "."
if (!exists("term")) term = "pngcairo"
if (term eq "pngcairo") {
  set terminal pngcairo size 900,540 font "sans,11" noenhanced
} else {
  set terminal png size 900,540 noenhanced
}
set output dir."/preempt.png"
set datafile separator "\t"
set datafile missing "-"

set title "A sleeper's wakes beside a green thread that never yields, " \
  . "1 worker (log scale)"
set xlabel "when the wake was due (ms since the spinner started)"
set ylabel "how late it came"
set logscale y
set ytics ("1 µs" 1e-3, "10 µs" 1e-2, "100 µs" 0.1, "1 ms" 1, "10 ms" 10, \
  "100 ms" 100, "1 s" 1000, "10 s" 1e4)
# x up to the last wake (the spinner's run, about), y with room above the
# latest wake.
stats dir."/plot-preempt.dat" using ($1 + $2) name "W" nooutput
stats dir."/plot-preempt.dat" using 2 name "L" nooutput
set xrange [0:W_max * 1.05]
set yrange [1e-2:(L_max > 20 ? L_max : 20) * 3]
set grid xtics ytics
set key bottom right box opaque Left reverse

# The slice, and the target of preempt.latency.p99 (two slices).
set arrow from graph 0, first 10 to graph 1, first 10 nohead dt 2 \
  lc rgb "#7f7f7f"
set label "slice (10 ms)" at graph 0.99, first 10 right offset 0,0.6 \
  font "sans,9" tc rgb "#7f7f7f"
set arrow from graph 0, first 20 to graph 1, first 20 nohead dt 3 \
  lc rgb "#c00000"
set label "target: 2 slices" at graph 0.99, first 20 right offset 0,0.6 \
  font "sans,9" tc rgb "#c00000"

# A wake on time would be 0 on a log scale: shown at 10 us.  Off first,
# open, so that the wakes with preemption show on top where both fall.
late(y) = y > 1e-2 ? y : 1e-2
plot dir."/plot-preempt.dat" index 1 using 1:(late($2)) with points \
       pt 4 ps 1.2 lc rgb "#ed7d31" title "preemption off", \
     "" index 0 using 1:(late($2)) with points pt 7 ps 0.6 \
       lc rgb "#4472c4" title "preemption on (10 ms slice)"
