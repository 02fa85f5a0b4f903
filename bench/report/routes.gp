# Plot 3: throughput against the number of static routes in the target's
# subsystem (throughput scenario routes, --routes N).
# data: routes msgs_per_s p50_ns p99_ns. Set by the caller: data, out, note.
load dir."/common.gp"
set title "Throughput against routes in the subsystem (".note.")"
set xlabel "static routes in the subsystem (--routes, log scale)"
set ylabel "million messages / s"
set logscale x 10
set format x "%.0s%c"
set xrange [*:*]
set offsets graph 0.05, graph 0.05, graph 0.1, 0
set yrange [0:*]
set key off
plot data using 1:($2/1e6) with linespoints lw 2 pt 7 lc rgb "#4477aa", \
     '' using 1:($2/1e6):(sprintf("%.2f", $2/1e6)) with labels offset 0,1
