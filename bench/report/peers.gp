# Plot 1: hypha against its peers, medians of bench/peers/run.sh.
# data: two blocks ("label" rate): one-way messages (hypha static, CAF count,
# ZeroMQ inproc), then round trips (hypha pingpong, CAF pingpong); the label
# names the contender, the panel title the scenarios.
# Set by the caller: data, out, note.
load dir."/common.gp"
set multiplot layout 1,2 title "Throughput against peers (medians; ".note.")"
set boxwidth 0.6
set yrange [0:*]
set offsets 0.5, 0.5, graph 0.12, 0
set xtics scale 0
set key off

set title "one sender to one receiver\n(hypha static, CAF count, ZeroMQ inproc push/pull)"
set ylabel "million messages / s"
plot data index 0 using 0:($2/1e6):xtic(1) with boxes lc rgb "#4477aa", \
     '' index 0 using 0:($2/1e6):(sprintf("%.2f", $2/1e6)) with labels offset 0,0.8

set title "two actors bouncing one message\n(hypha pingpong, CAF pingpong)"
set ylabel "million round trips / s"
plot data index 1 using 0:($2/1e6):xtic(1) with boxes lc rgb "#ee6677", \
     '' index 1 using 0:($2/1e6):(sprintf("%.3f", $2/1e6)) with labels offset 0,0.8
unset multiplot
