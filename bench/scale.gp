# scale.gp - from 10 to 1,000,000 units alive at once: the time to start
# each and its memory, per mode.
# Run by report.sh as
#   gnuplot -e "dir='RESULTS'; term='pngcairo'" scale.gp
if (!exists("dir")) dir = "."
if (!exists("term")) term = "pngcairo"
if (term eq "pngcairo") {
  set terminal pngcairo size 1100,500 font "sans,11" noenhanced
} else {
  set terminal png size 1100,500 noenhanced
}
set output dir."/scaling.png"
set datafile separator "\t"
set datafile missing "-"

set multiplot layout 1,2 title "N units alive at once (log-log)"
set logscale xy
set format x "%.0s%c"
set xrange [5:2e6]
set xlabel "units alive"
set grid xtics ytics mxtics mytics
set key top right
set style line 1 lc rgb "#4472c4" lw 2 pt 7
set style line 2 lc rgb "#ed7d31" lw 2 pt 5
set style line 3 lc rgb "#a5a5a5" lw 2 pt 9

set title "time to start one unit"
set ylabel "per unit"
set yrange [100:*]
set ytics ("1 ns" 1, "10 ns" 10, "100 ns" 100, "1 µs" 1e3, "10 µs" 1e4, \
  "100 µs" 1e5, "1 ms" 1e6, "10 ms" 1e7, "100 ms" 1e8, "1 s" 1e9)
plot dir."/plot-scale.dat" index 0 using 1:2 with linespoints ls 1 \
       title "green thread", \
     "" index 1 using 1:2 with linespoints ls 2 title "kernel thread", \
     "" index 2 using 1:2 with linespoints ls 3 title "process"

set title "memory per unit"
set ylabel "KiB per unit"
set yrange [1:*]
set ytics auto
set format y "%g"
plot dir."/plot-scale.dat" index 0 using 1:3 with linespoints ls 1 \
       title "green thread", \
     "" index 1 using 1:3 with linespoints ls 2 title "kernel thread", \
     "" index 2 using 1:3 with linespoints ls 3 title "process"
unset multiplot
