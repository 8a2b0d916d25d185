# handoff.gp - switch and handoff cost per mode, one way, on two CPUs and
# on one.  Run by report.sh as
#   gnuplot -e "dir='RESULTS'; term='pngcairo'" handoff.gp
if (!exists("dir")) dir = "."
if (!exists("term")) term = "pngcairo"
if (term eq "pngcairo") {
  set terminal pngcairo size 1100,560 font "sans,11" noenhanced
} else {
  set terminal png size 1100,560 noenhanced
}
set output dir."/handoff.png"
set datafile separator "\t"
set datafile missing "-"

set title "One message from one unit to the other, one way (log scale)"
set ylabel "one-way handoff"
set logscale y
set ytics ("1 ns" 1, "10 ns" 10, "100 ns" 100, "1 µs" 1e3, "10 µs" 1e4, \
  "100 µs" 1e5, "1 ms" 1e6, "10 ms" 1e7, "100 ms" 1e8, "1 s" 1e9)
# Room above the tallest bar for its rotated label.
stats dir."/plot-handoff.dat" using 2 name "A" nooutput
stats dir."/plot-handoff.dat" using 3 name "B" nooutput
top = (A_max > B_max ? A_max : B_max) * 30
set yrange [1:top]
set grid ytics
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set xtics nomirror
set key top left

# Two bars per group: width 1/3 each, centred at x -/+ 1/6.
lab = 'rotate by 90 left offset 0,-0.6 font "sans,9" notitle'
plot dir."/plot-handoff.dat" using 2:xtic(1) \
       title "two CPUs (green: 2 workers)" lc rgb "#ed7d31", \
     "" using 3 title "one CPU (green: 1 worker)" lc rgb "#4472c4", \
     "" using ($0 - 1.0/6):($2 * 1.6):4 with labels @lab, \
     "" using ($0 + 1.0/6):($3 * 1.6):5 with labels @lab
