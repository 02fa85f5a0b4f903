#!/bin/sh
# bench-report: runs the benchmark families and writes a static page of SVG
# plots (gnuplot), REPORT_DIR/index.html, with every plot's raw JSON lines
# beside it (*.jsonl) and the commands that produced them written under it.
#
#   peers.svg    hypha static vs CAF count vs ZeroMQ inproc, hypha pingpong vs
#                CAF pingpong: the median-* lines of bench/peers/run.sh
#   workers.svg  throughput static, param, fanout, multi at --workers 1, 2, 4
#   routes.svg   throughput routes at --routes 10, 1000, 100000
#   latency.svg  p50/p99 send-to-handler of every throughput scenario that
#                samples it, and the actors family's activation latency
#
# Environment:
#   BUILD=build  HYPHA_BENCH=$BUILD/hypha-bench  PEERS_DIR=$BUILD/peers
#   REPORT_DIR=$BUILD/report  GNUPLOT=gnuplot
#   REPORT_QUICK=1   small sizes (well under a minute), for checks; the
#                    default sizes take a few minutes on 2 cores
# Without the peer programs in PEERS_DIR (make bench-peers builds them) the
# page says so in place of the peers plot. Exit: 0; 1 a run failed (found
# wrong results) or a plot could not be made; 2 bad settings.
# POSIX sh and awk only, like bench/peers/run.sh.

set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-build}
HYPHA_BENCH=${HYPHA_BENCH:-$BUILD/hypha-bench}
PEERS_DIR=${PEERS_DIR:-$BUILD/peers}
REPORT_DIR=${REPORT_DIR:-$BUILD/report}
GNUPLOT=${GNUPLOT:-gnuplot}
REPORT_QUICK=${REPORT_QUICK:-0}

if [ "$REPORT_QUICK" = 1 ]; then
    mode=quick
    MESSAGES=50000          # per throughput run
    REPEATS=1               # runs per workers/routes point, median plotted
    PEER_MESSAGES=200000 PEER_ROUNDTRIPS=20000 PEER_ROUNDS=1
    ACTORS=20000            # actors activate
else
    mode=default
    MESSAGES=10000000
    REPEATS=3
    PEER_MESSAGES=5000000 PEER_ROUNDTRIPS=1000000 PEER_ROUNDS=5
    ACTORS=200000
fi
WORKER_COUNTS="1 2 4"
WORKER_SCENARIOS="static param fanout multi"
ROUTE_COUNTS="10 1000 100000"

[ -x "$HYPHA_BENCH" ] || { echo "report.sh: no $HYPHA_BENCH (make $HYPHA_BENCH)" >&2; exit 2; }
command -v "$GNUPLOT" >/dev/null 2>&1 || {
    echo "report.sh: no $GNUPLOT (Debian package gnuplot-nox)" >&2; exit 2; }
mkdir -p "$REPORT_DIR" || exit 2
rm -f "$REPORT_DIR"/*.svg "$REPORT_DIR"/*.jsonl "$REPORT_DIR"/*.dat "$REPORT_DIR"/*.cmd \
      "$REPORT_DIR"/index.html
failed=0
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?')
note="$mode run, $ncpu CPUs"

say() { [ -t 2 ] && printf '\r%-60s' "report: $*" >&2; return 0; }

# run PLOT COMMAND...: run COMMAND REPEATS times, append its JSON lines to
# PLOT.jsonl and the command to PLOT.cmd. A failing command is shown and counted.
run() {
    plot=$1
    shift
    echo "$*" >>"$REPORT_DIR/$plot.cmd"
    i=1
    while [ "$i" -le "$REPEATS" ]; do
        say "$plot: $*"
        "$@" >"$REPORT_DIR/.out" 2>"$REPORT_DIR/.err"
        rc=$?
        grep '^{' "$REPORT_DIR/.out" >>"$REPORT_DIR/$plot.jsonl"
        if [ "$rc" -ne 0 ]; then
            [ -t 2 ] && echo >&2
            echo "report.sh: '$*' exited $rc" >&2
            sed 's/^/  | /' "$REPORT_DIR/.err" | tail -n 5 >&2
            failed=1
            break
        fi
        i=$((i + 1))
    done
    return 0
}

# f(KEY) in an awk program: the value of "KEY": in the current flat JSON line,
# a number as it is, a string without its quotes; "" when absent.
AWK_F='
function f(k,    re, v) {
    re = "\"" k "\":(\"[^\"]*\"|[-+0-9.eE]+|true|false)"
    if (!match($0, re)) return ""
    v = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3)
    gsub(/"/, "", v)
    return v
}
# add(K, V) keeps V among the values of K; med(K) is their median ("?": none).
function add(k, v) { nv[k]++; vals[k, nv[k]] = v + 0 }
function med(k,    n, i, j, t, a) {
    n = nv[k]
    if (!n) return "?"
    for (i = 1; i <= n; i++) a[i] = vals[k, i]
    for (i = 2; i <= n; i++) {
        t = a[i]
        for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
'

plot() { # NAME VARIABLES: gnuplot bench/report/NAME.gp into NAME.svg
    log="$REPORT_DIR/$1.gnuplot.log"
    if "$GNUPLOT" -e "dir='$here'; data='$REPORT_DIR/$1.dat'; out='$REPORT_DIR/$1.svg'; note='$note'; $2" \
        "$here/$1.gp" 2>"$log" && [ -s "$REPORT_DIR/$1.svg" ]; then
        [ -s "$log" ] || rm -f "$log"
    else
        echo "report.sh: gnuplot $1.gp failed:" >&2
        sed 's/^/  | /' "$log" | tail -n 5 >&2
        rm -f "$REPORT_DIR/$1.svg"
        failed=1
    fi
}

# ------------------------------------------------------------ 1. peers
have_peers=1
for p in caf_count caf_pingpong zmq_pushpull erl_count erl_pingpong; do
    [ -x "$PEERS_DIR/$p" ] || have_peers=0
done
if [ "$have_peers" = 1 ]; then
    say "peers: bench/peers/run.sh"
    echo "BUILD=$BUILD HYPHA_BENCH=$HYPHA_BENCH PEERS_DIR=$PEERS_DIR ROUNDS=$PEER_ROUNDS" \
         "PEER_MESSAGES=$PEER_MESSAGES PEER_ROUNDTRIPS=$PEER_ROUNDTRIPS sh bench/peers/run.sh" \
         >"$REPORT_DIR/peers.cmd"
    BUILD=$BUILD HYPHA_BENCH=$HYPHA_BENCH PEERS_DIR=$PEERS_DIR ROUNDS=$PEER_ROUNDS \
        PEER_MESSAGES=$PEER_MESSAGES PEER_ROUNDTRIPS=$PEER_ROUNDTRIPS \
        sh "$here/../peers/run.sh" >"$REPORT_DIR/.out" 2>"$REPORT_DIR/.err"
    rc=$?
    grep '^{' "$REPORT_DIR/.out" >"$REPORT_DIR/peers.jsonl"
    if [ "$rc" -ne 0 ]; then
        [ -t 2 ] && echo >&2
        echo "report.sh: bench/peers/run.sh exited $rc" >&2
        grep 'run.sh:' "$REPORT_DIR/.err" | head -n 5 >&2
        failed=1
    fi
    awk "$AWK_F"'
f("bench") == "peers" && f("scenario") ~ /^median-/ { m[substr(f("scenario"), 8)] = f("msgs_per_s") }
END {
    nb = split("hypha-count:hypha|caf-count:CAF|erl-count:Erlang;" \
               "hypha-static:hypha|zmq-inproc:ZeroMQ|bare:bare MPSC;" \
               "hypha-pingpong:hypha|caf-pingpong:CAF|erl-pingpong:Erlang", blocks, ";")
    for (b = 1; b <= nb; b++) {
        if (b > 1) printf "\n\n"
        n = split(blocks[b], a, "|")
        for (i = 1; i <= n; i++) { split(a[i], kv, ":"); if (kv[1] in m) printf "\"%s\" %s\n", kv[2], m[kv[1]] }
    }
}' "$REPORT_DIR/peers.jsonl" >"$REPORT_DIR/peers.dat"
    if [ "$(grep -c '^"' "$REPORT_DIR/peers.dat")" -eq 9 ]; then
        plot peers ""
    else
        echo "report.sh: bench/peers/run.sh gave fewer than 9 medians; no peers plot" >&2
        failed=1
    fi
fi

# ------------------------------------------------------------ 2. workers
for w in $WORKER_COUNTS; do
    for s in $WORKER_SCENARIOS; do
        run workers "$HYPHA_BENCH" throughput --scenario "$s" --workers "$w" \
            --messages "$MESSAGES" --json
    done
done
awk -v scenarios="$WORKER_SCENARIOS" -v workers="$WORKER_COUNTS" "$AWK_F"'
{ add(f("workers") " " f("scenario"), f("msgs_per_s")) }
END {
    ns = split(scenarios, sc, " "); nw = split(workers, wk, " ")
    printf "workers"; for (j = 1; j <= ns; j++) printf " %s", sc[j]; printf "\n"
    for (i = 1; i <= nw; i++) {
        printf "%s", wk[i]
        for (j = 1; j <= ns; j++) printf " %s", med(wk[i] " " sc[j])
        printf "\n"
    }
}' "$REPORT_DIR/workers.jsonl" >"$REPORT_DIR/workers.dat"
plot workers "ncols=$(($(echo $WORKER_SCENARIOS | wc -w) + 1))"

# ------------------------------------------------------------ 3. routes
for n in $ROUTE_COUNTS; do
    run routes "$HYPHA_BENCH" throughput --scenario routes --routes "$n" \
        --messages "$MESSAGES" --json
done
awk "$AWK_F"'
f("scenario") == "routes" && f("routes") != "" {
    n = f("routes")
    if (!(n in seen)) { seen[n] = 1; order[++count] = n }
    add(n " rate", f("msgs_per_s")); add(n " p50", f("p50_ns")); add(n " p99", f("p99_ns"))
}
END { for (i = 1; i <= count; i++) { n = order[i]; print n, med(n " rate"), med(n " p50"), med(n " p99") } }
' "$REPORT_DIR/routes.jsonl" >"$REPORT_DIR/routes.dat"
plot routes ""

# ------------------------------------------------------------ 4. latency
# Every throughput scenario at its defaults but the size, then one activation
# run (which passivates its actors after, a few seconds of idle timeout).
repeats=$REPEATS REPEATS=1
run latency "$HYPHA_BENCH" throughput --messages "$MESSAGES" --json
run latency "$HYPHA_BENCH" actors --scenario activate --messages "$ACTORS" --json
REPEATS=$repeats
awk "$AWK_F"'
function v(x) { return (x == "" || x + 0 <= 0) ? "?" : x }
f("bench") == "throughput" && f("p50_ns") != "" {
    print "\"" f("scenario") "\"", v(f("p50_ns")), v(f("p99_ns"))
}
f("bench") == "actors" && f("activation_p50_ns") != "" {
    print "\"actors " f("scenario") "\"", v(f("activation_p50_ns")), v(f("activation_p99_ns"))
}' "$REPORT_DIR/latency.jsonl" >"$REPORT_DIR/latency.dat"
plot latency ""
[ -t 2 ] && echo >&2

# ------------------------------------------------------------ the page
html() { sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g' "$@"; }

# section NAME TITLE TEXT: the plot (or why there is none), its data, commands.
section() {
    printf '<h2>%s</h2>\n<p>%s</p>\n' "$2" "$3"
    if [ -f "$REPORT_DIR/$1.svg" ]; then
        printf '<p><img src="%s.svg" alt="%s" width="760"></p>\n' "$1" "$2"
    elif [ "$1" = peers ] && [ "$have_peers" = 0 ]; then
        printf '<p class="missing">No plot: the peer programs are not in %s (<code>make bench-peers</code> builds them; <code>make bench-report</code> does too).</p>\n' \
            "$PEERS_DIR"
    else
        printf '<p class="missing">No plot: a run or gnuplot failed (see the output of report.sh).</p>\n'
    fi
    if [ -s "$REPORT_DIR/$1.jsonl" ]; then
        printf '<p>Raw JSON lines: <a href="%s.jsonl">%s.jsonl</a>. Produced by:</p>\n<pre>' "$1" "$1"
        html "$REPORT_DIR/$1.cmd"
        printf '</pre>\n'
    fi
}

commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
{
    cat <<HEAD
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hypha benchmark report</title>
<style>
body { font-family: sans-serif; max-width: 52em; margin: 2em auto; padding: 0 1em; color: #222; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
.missing { color: #a33; }
</style>
</head>
<body>
<h1>hypha benchmark report</h1>
<p>One run of <code>bench/report/report.sh</code> ($mode sizes) on $(uname -sm | html), $ncpu online CPUs$( [ -n "$cpu" ] && printf ' (%s)' "$cpu" | html), commit $commit, $(date -u '+%Y-%m-%d %H:%M UTC').
Figures are from this machine and this run only: compare within the page, by ratio.</p>
HEAD
    section peers "Throughput against peers" \
        "Medians over $PEER_ROUNDS round(s) of <code>bench/peers/run.sh</code>, which alternates each peer with the matching hypha scenario: hypha <code>count</code> (a sender actor in slices of 1024) against CAF's and Erlang's counting actors, hypha <code>static</code> (a sender thread) against ZeroMQ's inproc push/pull and against <code>bare</code>, the mailbox queue alone between two threads ($PEER_MESSAGES messages each), hypha <code>pingpong</code> against CAF's and Erlang's ($PEER_ROUNDTRIPS round trips)."
    section workers "Throughput against worker threads" \
        "Throughput scenarios $WORKER_SCENARIOS with <code>--workers</code> $WORKER_COUNTS, $MESSAGES messages each; each command run $REPEATS time(s), the median plotted. <code>multi</code> runs one sender per worker; the others one sender."
    section routes "Throughput against the number of routes" \
        "Scenario <code>routes</code>: one sender to one static route of a subsystem holding N static routes (<code>--routes N</code>), $MESSAGES messages each; each command run $REPEATS time(s), the median plotted."
    section latency "Latency percentiles" \
        "Send-to-handler latency, p50 and p99, sampled on one message in 1024 by every throughput scenario that samples it ($MESSAGES messages, senders running flat out, so it includes queueing), and the kernel's activation latency of a keyed actor (<code>actors activate</code>, $ACTORS actors)."
    printf '</body>\n</html>\n'
} >"$REPORT_DIR/index.html"
rm -f "$REPORT_DIR/.out" "$REPORT_DIR/.err"

echo "report: $REPORT_DIR/index.html"
[ "$failed" -eq 0 ] || { echo "report.sh: some runs or plots failed (above)" >&2; exit 1; }
exit 0
