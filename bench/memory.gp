# memory.gp - memory per idle unit per mode, in parts.
# Run by report.sh as
#   gnuplot -e "dir='RESULTS'; term='pngcairo'" memory.gp
if (!exists("dir")) dir = "."
if (!exists("term")) term = "pngcairo"
if (term eq "pngcairo") {
  set terminal pngcairo size 900,540 font "sans,11" noenhanced
} else {
  set terminal png size 900,540 noenhanced
}
set output dir."/memory.png"
set datafile separator "\t"
set datafile missing "-"

set title "Memory per idle unit (kernel slab not counted)"
set ylabel "KiB per unit"
set yrange [0:*]
set grid ytics
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.6
set xtics nomirror
set key top left

plot dir."/plot-memory.dat" using 2:xtic(1) \
       title "user pages (stack, copied pages)" lc rgb "#4472c4", \
     "" using 3 title "page tables" lc rgb "#ed7d31", \
     "" using 4 title "kernel stack" lc rgb "#a5a5a5", \
     "" using 0:5:6 with labels offset 0,0.8 font "sans,11" notitle
