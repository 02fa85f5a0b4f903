# Plot 4: latency percentiles, log scale: p50 and p99 per scenario.
# data: "label" p50_ns p99_ns ("?" where a figure is missing or 0).
# Set by the caller: data, out, note.
load dir."/common.gp"
set title "Latency percentiles (".note.")"
set ylabel "latency (log scale)"
set logscale y 10
set yrange [1:*]
set ytics ("1 ns" 1, "10 ns" 10, "100 ns" 100, "1 µs" 1e3, "10 µs" 1e4, "100 µs" 1e5, \
           "1 ms" 1e6, "10 ms" 1e7, "100 ms" 1e8, "1 s" 1e9, "10 s" 1e10)
set style data histogram
set style histogram cluster gap 1
set boxwidth 0.9
set xtics rotate by 30 right scale 0
set key outside right top vertical
plot data using 2:xtic(1) title "p50" lc rgb "#4477aa", \
     '' using 3 title "p99" lc rgb "#ee6677"
