# Plot 1: hypha against its peers, medians of bench/peers/run.sh.
# data: three blocks ("label" rate): a sender actor counting (hypha count, CAF,
# Erlang), a sender thread (hypha static, ZeroMQ inproc, the bare MPSC queue),
# round trips (hypha pingpong, CAF, Erlang); the label names the contender,
# the panel title the scenarios.
# Set by the caller: data, out, note.
load dir."/common.gp"
set terminal svg size 1140,420 fixed noenhanced font "sans,12" background "#ffffff"
set output out
set multiplot layout 1,3 title "Throughput against peers (medians; ".note.")"
set boxwidth 0.6
set yrange [0:*]
set offsets 0.5, 0.5, graph 0.12, 0
set xtics scale 0
set key off

set title "a sender actor to a counting actor\n(hypha count, CAF, Erlang; slices of 1024)"
set ylabel "million messages / s"
plot data index 0 using 0:($2/1e6):xtic(1) with boxes lc rgb "#4477aa", \
     '' index 0 using 0:($2/1e6):(sprintf("%.2f", $2/1e6)) with labels offset 0,0.8

set title "a sender thread to one receiver\n(hypha static, ZeroMQ inproc, bare MPSC queue)"
plot data index 1 using 0:($2/1e6):xtic(1) with boxes lc rgb "#228833", \
     '' index 1 using 0:($2/1e6):(sprintf("%.2f", $2/1e6)) with labels offset 0,0.8

set title "two actors bouncing one message\n(hypha pingpong, CAF, Erlang)"
set ylabel "million round trips / s"
plot data index 2 using 0:($2/1e6):xtic(1) with boxes lc rgb "#ee6677", \
     '' index 2 using 0:($2/1e6):(sprintf("%.3f", $2/1e6)) with labels offset 0,0.8
unset multiplot
