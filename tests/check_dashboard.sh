#!/bin/sh
# Loads the gateway's dashboard (GET /) in headless Chromium against a live
# kernel, and checks that the figures the page shows are those of GET /stats:
# the page must have polled /stats at least twice, and each figure it shows
# (its data-value attribute and its text) must lie between what curl read
# just before and just after the page was loaded (equal for a counter that
# did not move: the example's traffic is drained by then). Also saves a
# screenshot to $BUILD/dashboard.png.
#
# Needs the gateway example ($BUILD/examples/gateway), run as
# "gateway serve SECONDS": it prints the dashboard's URL
# (http://127.0.0.1:PORT/, with #token=... when /stats needs one), and stays
# up that long. Prints nothing at all when the example, curl or Chromium is
# missing: nothing was checked. Prints "PASS name" / "FAIL name" lines
# (tests/run.sh counts them) and exits 0.
cd "$(dirname "$0")/.." || exit 0
BUILD="${BUILD:-build}"
EXE="$BUILD/examples/gateway"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$EXE" ] && [ -x "$CHROMIUM" ] && command -v curl >/dev/null 2>&1 || exit 0

T=$(mktemp -d "${TMPDIR:-/tmp}/hy-dashboard.XXXXXX") || exit 0
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

pass() { echo "PASS dashboard: $1"; }
fail() { echo "FAIL dashboard: $1"; }

"$EXE" serve 60 >"$T/server.out" 2>&1 &
SERVER=$!
URL=
i=0
while [ $i -lt 100 ]; do
    URL=$(grep -o 'http://[0-9.]*:[0-9]*/[^ ]*' "$T/server.out" | head -n 1)
    [ -n "$URL" ] && break
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$URL" ]; then
    fail "\"gateway serve\" printed no http://127.0.0.1:PORT/ URL"
    sed 's/^/    /' "$T/server.out"
    exit 0
fi
BASE=${URL%%#*}
BASE=${BASE%/}
TOKEN=
case "$URL" in *'#token='*) TOKEN=${URL#*#token=}; TOKEN=${TOKEN%%&*} ;; esac

# GET /stats on one line without blanks (names have none).
stats() {
    if [ -n "$TOKEN" ]; then
        curl -fsS -H "Authorization: Bearer $TOKEN" "$BASE/stats"
    else
        curl -fsS "$BASE/stats"
    fi | tr -d ' \t\r\n'
}

# Chromium with the flags a closed network needs, a fresh profile each run.
run_chromium() {
    rm -rf "$T/profile"
    timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update \
        --disable-sync --user-data-dir="$T/profile" --window-size=1280,800 \
        --virtual-time-budget=5000 "$@" 2>>"$T/chromium.err"
}

# The served page must be the dashboard.
if curl -fsS "$BASE/" 2>/dev/null | grep -q 'data-figure="total-handled"'; then
    pass "GET / serves the page"
else
    fail "GET / does not serve the dashboard page"
fi

# Let the example's traffic drain: two equal reads of the handled counter of
# its subsystems (at most 5 s).
stats >"$T/before.json" 2>/dev/null
i=0
while [ $i -lt 50 ]; do
    sleep 0.1
    stats >"$T/before2.json" 2>/dev/null
    cmp -s "$T/before.json" "$T/before2.json" && break
    mv "$T/before2.json" "$T/before.json"
    i=$((i + 1))
done
run_chromium --dump-dom "$URL" >"$T/dom.html"
stats >"$T/after.json" 2>/dev/null
if ! [ -s "$T/before.json" ] || ! [ -s "$T/after.json" ]; then
    fail "GET /stats failed"
    exit 0
fi

polls=$(grep -o 'data-polls="[0-9]*"' "$T/dom.html" | head -n 1 | tr -dc 0-9)
if [ -n "$polls" ] && [ "$polls" -ge 2 ]; then
    pass "the page polled /stats ($polls times)"
else
    fail "the page did not poll /stats twice (data-polls=\"$polls\")"
    sed 's/^/    /' "$T/chromium.err" | tail -n 5
fi

# jtop FILE KEY: a top-level (or pool) number of /stats.
jtop() {
    sed 's/"per_subsystem".*//' "$1" | grep -o "\"$2\":[0-9.]*" | head -n 1 | cut -d: -f2
}
# jsub FILE NAME KEY: a figure of one subsystem.
jsub() {
    sed 's/.*"per_subsystem":\[//; s/},{/}\
{/g' "$1" | grep "\"name\":\"$2\"" | grep -o "\"$3\":[0-9.]*" | head -n 1 | cut -d: -f2
}
# dom ATTRS: the data-value and the text of the element with those attributes.
dom() {
    grep -o "$1 data-value=\"[^\"]*\"[^>]*>[^<]*<" "$T/dom.html" | head -n 1 |
        sed 's/.*data-value="\([^"]*\)"[^>]*>\([^<]*\)<.*/\1 \2/'
}
bad=0
# within LABEL ATTRS BEFORE AFTER: the page's figure lies between BEFORE and
# AFTER (either way round: gauges such as queued may fall) and its text
# shows it.
within() {
    got=$(dom "$2")
    value=${got%% *}
    text=$(printf '%s' "${got#* }" | tr -d ,)
    if [ -z "$got" ] || [ -z "$3" ] || [ -z "$4" ]; then
        echo "    $1: missing (page: \"$got\", /stats: \"$3\" .. \"$4\")"
        bad=$((bad + 1))
    elif [ "$value" != "$text" ] ||
         ! awk -v v="$value" -v a="$3" -v b="$4" 'BEGIN { lo = a + 0; hi = b + 0
                 if (lo > hi) { t = lo; lo = hi; hi = t }
                 exit !(v + 0 >= lo && v + 0 <= hi) }'; then
        echo "    $1: page shows \"$text\" (data-value $value), /stats said $3 then $4"
        bad=$((bad + 1))
    fi
}

for f in handled sent failed queued actors workers; do
    within "$f" "data-figure=\"total-$f\"" "$(jtop "$T/before.json" "$f")" "$(jtop "$T/after.json" "$f")"
done
within "pool in_use" 'data-figure="pool-in-use"' "$(jtop "$T/before.json" in_use)" "$(jtop "$T/after.json" in_use)"
within "pool peak" 'data-figure="pool-peak"' "$(jtop "$T/before.json" peak)" "$(jtop "$T/after.json" peak)"
if [ $bad -eq 0 ]; then pass "kernel figures match /stats"; else fail "kernel figures differ from /stats"; fi

names=$(sed 's/.*"per_subsystem":\[//' "$T/after.json" | grep -o '"name":"[^"]*"' | cut -d'"' -f4)
if [ -z "$names" ]; then
    fail "/stats lists no subsystem"
else
    bad=0
    for n in $names; do
        for f in handled sent failed dead queued actors refused; do
            within "$n $f" "data-subsystem=\"$n\" data-figure=\"$f\"" \
                "$(jsub "$T/before.json" "$n" "$f")" "$(jsub "$T/after.json" "$n" "$f")"
        done
    done
    if [ $bad -eq 0 ]; then
        pass "per-subsystem figures match /stats ($(echo $names | tr ' ' ,))"
    else
        fail "per-subsystem figures differ from /stats"
    fi
fi

# Without the token the page says it needs one, rather than showing nothing.
if [ -n "$TOKEN" ]; then
    run_chromium --dump-dom "$BASE/" >"$T/notoken.html"
    if grep -q 'id="status"[^>]*class="error"[^>]*>[^<]*token' "$T/notoken.html" ||
       grep -q 'class="error"[^>]*id="status"[^>]*>[^<]*token' "$T/notoken.html"; then
        pass "without a token the page asks for one"
    else
        fail "without a token the page does not ask for one"
    fi
fi

rm -f "$BUILD/dashboard.png"
run_chromium --screenshot="$BUILD/dashboard.png" "$URL" >/dev/null
if [ -s "$BUILD/dashboard.png" ] && head -c 8 "$BUILD/dashboard.png" | grep -q PNG; then
    pass "screenshot in $BUILD/dashboard.png"
else
    fail "no screenshot"
fi
exit 0
