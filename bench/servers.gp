# servers.gp - requests per second of each server and mode, coloured by
# load, references in grey (report.sh runs it with dir and term set).
if (term eq "pngcairo") {
  set terminal pngcairo size 1000,540 font "sans,11" noenhanced
} else {
  set terminal png size 1000,540 noenhanced
}
set output dir."/servers.png"
set datafile separator "\t"
set title "Requests per second, load generator on the same machine (log scale)"
set ylabel "requests per second"
set logscale y
set format y "%.0s%c"
set yrange [1000:*]
set grid ytics
set style fill solid 0.85 border -1
set boxwidth 0.7
set xtics rotate by -35 nomirror
set offsets 0.5, 0.5, 0, 0
set rmargin 8
set bmargin 6
unset key
set linetype 1 lc rgb "#4472c4"
set linetype 2 lc rgb "#ed7d31"
set linetype 3 lc rgb "#70ad47"
set linetype 4 lc rgb "#a5a5a5"
plot dir."/plot-servers.dat" using 0:2:4:xtic(1) with boxes lc variable, \
     "" using 0:($2 * 1.4):3 with labels font "sans,10"
