# create.gp - creation cost per mode: start a unit and wait for it.
# Run by report.sh as
#   gnuplot -e "dir='RESULTS'; term='pngcairo'" create.gp
if (!exists("dir")) dir = "."
if (!exists("term")) term = "pngcairo"
if (term eq "pngcairo") {
  set terminal pngcairo size 900,540 font "sans,11" noenhanced
} else {
  set terminal png size 900,540 noenhanced
}
set output dir."/create.png"
set datafile separator "\t"
set datafile missing "-"

set title "Start a unit and wait for it: weft_task_start + weft_task_wait " \
  . "(log scale)"
set ylabel "per unit"
set logscale y
set ytics ("1 ns" 1, "10 ns" 10, "100 ns" 100, "1 µs" 1e3, "10 µs" 1e4, \
  "100 µs" 1e5, "1 ms" 1e6, "10 ms" 1e7, "100 ms" 1e8, "1 s" 1e9)
set yrange [1:*]
set grid ytics
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.7
set xtics nomirror
unset key

plot dir."/plot-create.dat" using 2:xtic(1) lc rgb "#4472c4", \
     "" using 0:($2 * 1.6):3 with labels font "sans,11"
