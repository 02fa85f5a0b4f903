#!/bin/sh
# Peers against hypha, in the same run: ROUNDS rounds, each running every peer
# followed at once by the matching hypha scenario, so both sides of a ratio see
# the same machine state:
#
#   caf-count     then  hypha-bench throughput --scenario count
#   erl-count     then  hypha-bench throughput --scenario count
#   zmq-inproc    then  hypha-bench throughput --scenario static
#   bare          then  hypha-bench throughput --scenario static
#   caf-pingpong  then  hypha-bench throughput --scenario pingpong
#   erl-pingpong  then  hypha-bench throughput --scenario pingpong
#
# (bare is hypha-bench throughput --scenario bare: the mailbox queue alone
# between two threads, the floor under static.)
#
# stdout: every raw JSON line, then per contender a "median-*" line (the median
# of its runs' msgs_per_s and of their seconds) and per pair a "ratio-*" line
# (hypha/peer of the medians; its seconds: all runs of both) with the pair's
# "target" ratio and whether it is "met", all in the docs/ARCHITECTURE.md §6
# contract. The median and ratio lines are also saved to $RATIOS, where
# hypha-bench's table finds them for its closing summary (only after a run
# without failures). stderr: a table for people, one row per pair with its
# target (a pair not measured says so). A hypha scenario's samples from both of
# its slots form one median. Pingpong figures are round trips per second on
# both sides, so hypha's pingpong must count round trips too.
#
# Environment (defaults are the full sizes):
#   BUILD=build  HYPHA_BENCH=$BUILD/hypha-bench  PEERS_DIR=$BUILD/peers
#   RATIOS=$BUILD/peers/last-ratios.jsonl (hypha-bench reads <its folder>/peers/)
#   PEER_MESSAGES=10000000  PEER_ROUNDTRIPS=1000000  ROUNDS=5
#   WORKERS=<online CPUs>   scheduler threads for CAF, Erlang and hypha alike
#
# Exit: 0 (whether or not the targets are met: benches report, never assert);
#       1 a run failed or found wrong results; 2 bad settings;
#       3 a hypha scenario is unavailable (peer figures are still printed).
# POSIX sh and awk only: no jq or python on a fresh machine.

set -u
BUILD=${BUILD:-build}
HYPHA_BENCH=${HYPHA_BENCH:-$BUILD/hypha-bench}
PEERS_DIR=${PEERS_DIR:-$BUILD/peers}
RATIOS=${RATIOS:-$BUILD/peers/last-ratios.jsonl}
PEER_MESSAGES=${PEER_MESSAGES:-10000000}
PEER_ROUNDTRIPS=${PEER_ROUNDTRIPS:-1000000}
ROUNDS=${ROUNDS:-5}
WORKERS=${WORKERS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}

positive() { # NAME VALUE
    case $2 in
    '' | *[!0-9]* | 0) echo "run.sh: $1 must be a positive integer, not '$2'" >&2; exit 2 ;;
    esac
}
positive PEER_MESSAGES "$PEER_MESSAGES"
positive PEER_ROUNDTRIPS "$PEER_ROUNDTRIPS"
positive ROUNDS "$ROUNDS"
positive WORKERS "$WORKERS"

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
: >"$tmp/samples" # "contender msgs_per_s seconds", one line per run

failed=0
unavailable=0
missing=' ' # hypha scenarios found unavailable, not run again

# field NAME LINE: the numeric value of "NAME": in a flat JSON line.
field() {
    printf '%s\n' "$2" | sed -n "s/.*\"$1\":\([-+0-9.eE]*\).*/\1/p"
}

progress() {
    [ -t 2 ] && printf '\rround %s/%s: %-40s' "$1" "$ROUNDS" "$2" >&2
    return 0
}

# measure CONTENDER SCENARIO COMMAND...: run COMMAND, print its JSON lines,
# record the line whose "scenario" is SCENARIO. Returns non-zero (and shows the
# command's stderr) if the command failed or printed no such line.
measure() {
    contender=$1 scenario=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    grep '^{' "$tmp/out"
    line=$(grep "\"scenario\":\"$scenario\"" "$tmp/out" | grep '"msgs_per_s":' | head -n 1)
    rate=$(field msgs_per_s "$line")
    secs=$(field seconds "$line")
    if [ "$rc" -ne 0 ] || [ -z "$rate" ] || [ -z "$secs" ]; then
        [ -t 2 ] && echo >&2
        if [ "$rc" -ne 0 ]; then why="exited $rc"; else why="printed no \"$scenario\" result"; fi
        echo "run.sh: $contender: '$*' $why" >&2
        sed 's/^/  | /' "$tmp/err" | head -n 5 >&2
        return 1
    fi
    echo "$contender $rate $secs" >>"$tmp/samples"
    case $contender in
    hypha-pingpong)
        case $line in
        *'"unit":"round_trips"'*) ;;
        *) [ -f "$tmp/warned" ] || echo "run.sh: hypha's pingpong line has no" \
            '"unit":"round_trips"; the ratio assumes it counts round trips' >&2
           : >"$tmp/warned" ;;
        esac
    esac
    return 0
}

peer() { # CONTENDER SIZE
    case $1 in
    caf-count) measure "$1" "$1" "$PEERS_DIR/caf_count" --messages "$2" --workers "$WORKERS" ;;
    caf-pingpong) measure "$1" "$1" "$PEERS_DIR/caf_pingpong" --messages "$2" --workers "$WORKERS" ;;
    erl-count) measure "$1" "$1" "$PEERS_DIR/erl_count" --messages "$2" --workers "$WORKERS" ;;
    erl-pingpong) measure "$1" "$1" "$PEERS_DIR/erl_pingpong" --messages "$2" --workers "$WORKERS" ;;
    bare) measure "$1" "$1" "$HYPHA_BENCH" throughput --scenario bare --json --messages "$2" ;;
    zmq-inproc) measure "$1" "$1" "$PEERS_DIR/zmq_pushpull" --messages "$2" ;; # two threads, fixed
    esac || failed=1
}

# hypha SCENARIO SIZE. A run that printed its result line and then failed found
# wrong results (hypha-bench exits 1): a failure. A run with no result line
# means the scenario does not exist (yet): it is not run again.
hypha() {
    case $missing in *" $1 "*) return 0 ;; esac
    if measure "hypha-$1" "$1" "$HYPHA_BENCH" throughput --scenario "$1" --json \
        --messages "$2" --workers "$WORKERS"; then
        return 0
    elif [ -n "$line" ]; then
        failed=1
    else
        echo "run.sh: hypha scenario '$1' unavailable: '$HYPHA_BENCH throughput --scenario $1' failed; peer figures only" >&2
        missing="$missing$1 "
        unavailable=1
    fi
}

r=1
while [ "$r" -le "$ROUNDS" ]; do
    progress "$r" caf-count;      peer caf-count "$PEER_MESSAGES"
    progress "$r" hypha-count;    hypha count "$PEER_MESSAGES"
    progress "$r" erl-count;      peer erl-count "$PEER_MESSAGES"
    progress "$r" hypha-count;    hypha count "$PEER_MESSAGES"
    progress "$r" zmq-inproc;     peer zmq-inproc "$PEER_MESSAGES"
    progress "$r" hypha-static;   hypha static "$PEER_MESSAGES"
    progress "$r" bare;           peer bare "$PEER_MESSAGES"
    progress "$r" hypha-static;   hypha static "$PEER_MESSAGES"
    progress "$r" caf-pingpong;   peer caf-pingpong "$PEER_ROUNDTRIPS"
    progress "$r" hypha-pingpong; hypha pingpong "$PEER_ROUNDTRIPS"
    progress "$r" erl-pingpong;   peer erl-pingpong "$PEER_ROUNDTRIPS"
    progress "$r" hypha-pingpong; hypha pingpong "$PEER_ROUNDTRIPS"
    r=$((r + 1))
done
[ -t 2 ] && echo >&2

# summary: medians, then ratios against their targets, as JSON on stdout and a
# table on stderr. A pair: hypha scenario, peer contender, target ratio, and
# the words the table names the peer with.
awk -v rounds="$ROUNDS" -v msgs="$PEER_MESSAGES" -v trips="$PEER_ROUNDTRIPS" \
    -v workers="$WORKERS" -v table="$tmp/table" '
function median(v, c,    n, i, j, t, a) {
    n = 0
    for (i = 1; i <= cnt[c]; i++) a[++n] = v[c, i]
    for (i = 2; i <= n; i++) {          # insertion sort: a handful of samples
        t = a[i]
        for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function size(c) { return c ~ /pingpong/ ? trips : msgs }
function unit(c) { return c ~ /pingpong/ ? ",\"unit\":\"round_trips\"" : "" }
function target_text(t) { return t == 1 ? ">= 100%" : sprintf(">= %gx", t) }
function ratio_text(r, t) { return t == 1 ? sprintf("%.1f%%", r * 100) : sprintf("%.2fx", r) }
{ cnt[$1]++; rate[$1, cnt[$1]] = $2 + 0; secs[$1, cnt[$1]] = $3 + 0; total[$1] += $3 }
END {
    printf "%-16s %16s %8s %10s\n", "contender", "median msgs/s", "samples", "median s" > table
    n = split("caf-count erl-count zmq-inproc bare caf-pingpong erl-pingpong " \
              "hypha-count hypha-static hypha-pingpong", order, " ")
    for (k = 1; k <= n; k++) {
        c = order[k]
        if (!(c in cnt)) continue
        med[c] = median(rate, c)
        s = median(secs, c)
        printf "{\"bench\":\"peers\",\"scenario\":\"median-%s\",\"msgs_per_s\":%.0f," \
               "\"seconds\":%.3f,\"samples\":%d,\"rounds\":%d,\"messages\":%.0f," \
               "\"workers\":%d%s}\n", c, med[c], s, cnt[c], rounds, size(c),
               workers, unit(c)
        printf "%-16s %16.0f %8d %10.3f\n", c, med[c], cnt[c], s > table
    }
    n = split("count:caf-count:5:CAF counting|count:erl-count:4:Erlang counting|" \
              "static:zmq-inproc:3:ZeroMQ inproc PUSH/PULL|static:bare:1:bare MPSC hand-off|" \
              "pingpong:caf-pingpong:5:CAF ping-pong|pingpong:erl-pingpong:5:Erlang ping-pong",
              pairs, "|")
    printf "\n%-9s %-24s %14s %14s %8s %8s  %s\n", "hypha", "against", "hypha msgs/s",
           "peer msgs/s", "ratio", "target", "met" > table
    for (k = 1; k <= n; k++) {
        split(pairs[k], hp, ":")
        h = "hypha-" hp[1]; p = hp[2]; target = hp[3] + 0
        if (!(h in med) || !(p in med) || med[p] <= 0) {
            printf "%-9s %-24s %14s %14s %8s %8s  %s\n", hp[1], hp[4], "-", "-", "-",
                   target_text(target), "not measured" > table
            continue
        }
        ratio = med[h] / med[p]
        met = ratio >= target ? "true" : "false"
        printf "{\"bench\":\"peers\",\"scenario\":\"ratio-%s-vs-%s\",\"msgs_per_s\":%.0f," \
               "\"seconds\":%.3f,\"hypha_msgs_per_s\":%.0f,\"peer_msgs_per_s\":%.0f," \
               "\"ratio\":%.3f,\"target\":%g,\"met\":%s,\"rounds\":%d,\"messages\":%.0f," \
               "\"workers\":%d%s}\n",
               hp[1], p, med[h], total[h] + total[p], med[h], med[p], ratio, target, met,
               rounds, size(p), workers, unit(p)
        printf "%-9s %-24s %14.0f %14.0f %8s %8s  %s\n", hp[1], hp[4], med[h], med[p],
               ratio_text(ratio, target), target_text(target), met == "true" ? "yes" : "NO" > table
    }
}' "$tmp/samples" >"$tmp/summary"
cat "$tmp/summary"
[ -f "$tmp/table" ] && cat "$tmp/table" >&2
# Replace the saved figures only with a whole, failure-free run's, in one step.
if [ "$failed" -eq 0 ] && [ -s "$tmp/summary" ]; then
    mkdir -p "$(dirname "$RATIOS")" && cp "$tmp/summary" "$RATIOS.new" &&
        mv "$RATIOS.new" "$RATIOS" && echo "saved to $RATIOS" >&2
fi

[ "$failed" -ne 0 ] && exit 1
[ "$unavailable" -ne 0 ] && exit 3
exit 0
