# talk.gp - 4 KiB messages per second from one unit to another.
# Run by report.sh as
#   gnuplot -e "dir='RESULTS'; term='pngcairo'" talk.gp
if (!exists("dir")) dir = "."
if (!exists("term")) term = "pngcairo"
if (term eq "pngcairo") {
  set terminal pngcairo size 900,540 font "sans,11" noenhanced
} else {
  set terminal png size 900,540 noenhanced
}
set output dir."/talk.png"
set datafile separator "\t"
set datafile missing "-"

set title "4 KiB messages per second, one sender to one receiver (log scale)"
set ylabel "messages per second"
set logscale y
set format y "%.0s%c"
set yrange [1000:*]
set grid ytics
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.7
set xtics nomirror
unset key

plot dir."/plot-talk.dat" using 2:xtic(1) lc rgb "#70ad47", \
     "" using 0:($2 * 1.4):3 with labels font "sans,11"
