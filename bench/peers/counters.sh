#!/bin/sh
# What the msg/s figures cost the operating system: per message, context
# switches, CPU migrations and futex calls of hypha's static, count, bare and
# pingpong scenarios over a fixed N, and of the peers when they are built
# (make bench-peers builds them), so the figures in a note come from a command.
#
#   context switches, cpu-migrations   perf stat -e context-switches,cpu-migrations
#   futex calls    perf stat -e syscalls:sys_enter_futex (a count kept in the
#                  kernel: the threads run at full speed); where that tracepoint
#                  is unavailable, strace -c -f -e trace=futex in a second run
#                  (which stops the thread at every call: a slower run, so more
#                  waiting; the "futex_by" field says which)
#
# Each count is the whole process's, less the same command's with 1 message
# (start-up and shutdown: threads, Erlang's VM, CAF's system), divided by the
# messages: static is run with --alone (no bare rounds); pingpong and the
# ping-pong peers count 2 messages per round trip. Each figure is the median
# of ROUNDS runs.
#
# stdout: one JSON line per contender ("bench":"counters", the contract of
# docs/ARCHITECTURE.md §6, its msgs_per_s the median rate the runs printed);
# stderr: the table.
#
# Environment: BUILD=build HYPHA_BENCH=$BUILD/hypha-bench PEERS_DIR=$BUILD/peers
#   MESSAGES=2000000 ROUNDTRIPS=200000 ROUNDS=3 WORKERS=<online CPUs>
# Exit: 0; 1 a run failed; 2 bad settings or no perf.
set -u
BUILD=${BUILD:-build}
HYPHA_BENCH=${HYPHA_BENCH:-$BUILD/hypha-bench}
PEERS_DIR=${PEERS_DIR:-$BUILD/peers}
MESSAGES=${MESSAGES:-2000000}
ROUNDTRIPS=${ROUNDTRIPS:-200000}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}

for v in MESSAGES ROUNDTRIPS ROUNDS WORKERS; do
    eval "x=\$$v"
    case $x in '' | *[!0-9]* | 0) echo "counters.sh: $v must be a positive integer" >&2; exit 2 ;; esac
done
command -v perf >/dev/null 2>&1 || { echo "counters.sh: no perf (Debian package linux-perf)" >&2; exit 2; }
[ -x "$HYPHA_BENCH" ] || { echo "counters.sh: no $HYPHA_BENCH (make $HYPHA_BENCH)" >&2; exit 2; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

events=context-switches,cpu-migrations
if perf stat -e syscalls:sys_enter_futex true >/dev/null 2>&1; then
    futex_by=perf
    events="$events,syscalls:sys_enter_futex"
elif command -v strace >/dev/null 2>&1; then
    futex_by=strace
else
    echo "counters.sh: no futex tracepoint for perf and no strace: futex calls not counted" >&2
    futex_by=none
fi
failed=0

# count COMMAND...: one run; prints "rate context-switches migrations futex".
count() {
    perf stat -x, -o "$tmp/perf" -e "$events" -- "$@" >"$tmp/out" 2>"$tmp/err" || {
        echo "counters.sh: '$*' failed:" >&2
        sed 's/^/  | /' "$tmp/err" | tail -n 5 >&2
        return 1
    }
    futex=$(awk -F, '$3 ~ /sys_enter_futex/ { print $1 + 0 }' "$tmp/perf")
    if [ "$futex_by" = strace ]; then
        strace -f -c -e trace=futex -o "$tmp/strace" "$@" >/dev/null 2>&1
        futex=$(awk '$NF == "futex" { print $4 }' "$tmp/strace")
    fi
    rate=$(sed -n 's/.*"msgs_per_s":\([0-9.]*\).*/\1/p' "$tmp/out" | head -n 1)
    awk -F, -v rate="${rate:-0}" -v futex="${futex:-0}" '
        $3 == "context-switches" { cs = $1 + 0 }
        $3 == "cpu-migrations" { mig = $1 + 0 }
        END { print rate, cs, mig, futex }' "$tmp/perf"
}

# contender NAME MESSAGES_PER_UNIT SIZE COMMAND... (the command's size is the
# last argument pair, "--messages SIZE", appended here)
contender() {
    name=$1 per=$2 size=$3
    shift 3
    [ -t 2 ] && printf '\rcounters: %-30s' "$name" >&2
    : >"$tmp/samples"
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        full=$(count "$@" --messages "$size") && base=$(count "$@" --messages 1) || {
            failed=1
            return 0
        }
        echo "$full $base" >>"$tmp/samples"
        r=$((r + 1))
    done
    awk -v name="$name" -v n="$((size * per))" -v size="$size" -v by="$futex_by" '
    function median(k,    i, j, t, a) {
        for (i = 1; i <= NR; i++) a[i] = v[k, i]
        for (i = 2; i <= NR; i++) {
            t = a[i]
            for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
            a[j + 1] = t
        }
        return NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    }
    function less(x, y) { return x > y ? x - y : 0 }
    { v["rate", NR] = $1; v["cs", NR] = less($2, $6); v["mig", NR] = less($3, $7)
      v["fx", NR] = less($4, $8); v["cs0", NR] = $6; v["mig0", NR] = $7; v["fx0", NR] = $8 }
    END {
        rate = median("rate"); cs = median("cs"); mig = median("mig"); fx = median("fx")
        printf "{\"bench\":\"counters\",\"scenario\":\"%s\",\"msgs_per_s\":%.0f,\"seconds\":%.3f," \
               "\"messages\":%d,\"runs\":%d,\"context_switches\":%.0f,\"cpu_migrations\":%.0f," \
               "\"futex_calls\":%.0f,\"context_switches_per_msg\":%.6f," \
               "\"cpu_migrations_per_msg\":%.6f,\"futex_calls_per_msg\":%.6f," \
               "\"startup_context_switches\":%.0f,\"startup_cpu_migrations\":%.0f," \
               "\"startup_futex_calls\":%.0f,\"futex_by\":\"%s\"}\n",
               name, rate, (rate > 0 ? size / rate : 0), n, NR, cs, mig, fx, cs / n, mig / n,
               fx / n, median("cs0"), median("mig0"), median("fx0"), by
    }' "$tmp/samples"
}


{
    contender static 1 "$MESSAGES" "$HYPHA_BENCH" throughput --scenario static --alone --json --workers "$WORKERS"
    contender count 1 "$MESSAGES" "$HYPHA_BENCH" throughput --scenario count --json --workers "$WORKERS"
    contender bare 1 "$MESSAGES" "$HYPHA_BENCH" throughput --scenario bare --json
    contender pingpong 2 "$ROUNDTRIPS" "$HYPHA_BENCH" throughput --scenario pingpong --json --workers "$WORKERS"
    [ -x "$PEERS_DIR/caf_count" ] &&
        contender caf-count 1 "$MESSAGES" "$PEERS_DIR/caf_count" --workers "$WORKERS"
    [ -x "$PEERS_DIR/erl_count" ] &&
        contender erl-count 1 "$MESSAGES" "$PEERS_DIR/erl_count" --workers "$WORKERS"
    [ -x "$PEERS_DIR/zmq_pushpull" ] &&
        contender zmq-inproc 1 "$MESSAGES" "$PEERS_DIR/zmq_pushpull"
    [ -x "$PEERS_DIR/caf_pingpong" ] &&
        contender caf-pingpong 2 "$ROUNDTRIPS" "$PEERS_DIR/caf_pingpong" --workers "$WORKERS"
    [ -x "$PEERS_DIR/erl_pingpong" ] &&
        contender erl-pingpong 2 "$ROUNDTRIPS" "$PEERS_DIR/erl_pingpong" --workers "$WORKERS"
} >"$tmp/lines"
[ -t 2 ] && printf '\r%40s\r' '' >&2
cat "$tmp/lines"

awk -v by="$futex_by" '
function f(k,    re, v) {
    re = "\"" k "\":(\"[^\"]*\"|[-+0-9.eE]+)"
    if (!match($0, re)) return ""
    v = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3)
    gsub(/"/, "", v)
    return v
}
BEGIN {
    printf "%-14s %10s %14s %12s %12s %12s\n", "scenario", "messages", "msgs/s",
           "ctx sw/msg", "migr/msg", "futex/msg"
}
{
    printf "%-14s %10d %14.0f %12.6f %12.6f %12.6f\n", f("scenario"), f("messages"),
           f("msgs_per_s"), f("context_switches_per_msg"), f("cpu_migrations_per_msg"),
           f("futex_calls_per_msg")
}
END {
    printf "(per message, start-up and shutdown taken off, medians of runs; futex calls by %s;\n", by
    printf " pingpong rows: 2 messages per round trip, msgs/s there is round trips/s)\n"
}' "$tmp/lines" >&2
exit "$failed"
