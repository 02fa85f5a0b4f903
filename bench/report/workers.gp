# Plot 2: throughput against the number of worker threads.
# data: a header row (workers, then one column per scenario), then one row per
# worker count. Set by the caller: data, out, ncols, note.
load dir."/common.gp"
set title "Throughput against worker threads (".note.")"
set xlabel "worker threads (--workers)"
set ylabel "million messages / s"
set logscale x 2
set xtics (1, 2, 4, 8, 16)
set xrange [0.8:*]
set yrange [0:*]
set key outside right top
plot for [c=2:ncols] data using 1:(column(c)/1e6) with linespoints lw 2 pt 7 \
     title columnheader(c)
