#!/bin/sh
# Runs bench/report/report.sh in REPORT_QUICK mode into $BUILD/report-check and
# checks the page it writes: every <img>/<object> names an SVG file beside it
# that exists and is well-formed XML (xmllint when installed, else its <svg
# root), the plots that need no peer programs are all there (the peers one
# too when $BUILD/peers holds them), each linked .jsonl exists and holds JSON
# lines, and the page loads nothing from elsewhere and runs no script.
# Prints "PASS report" or "FAIL report: why" (tests/run.sh counts them).
#
# Only where gnuplot is installed (make bench-report installs it; make test
# then builds the bench too): elsewhere, and in the sanitizer builds (no bench
# built there), it prints nothing and exits 0, so make test needs no gnuplot.
cd "$(dirname "$0")/.." || exit 1
B="${BUILD:-build}"
command -v gnuplot >/dev/null 2>&1 || exit 0
[ -x "$B/hypha-bench" ] || exit 0

out="$B/report-check"
log="$B/report-check.log"
failed=0
fail() {
    echo "FAIL report: $*"
    failed=1
}

REPORT_QUICK=1 BUILD="$B" REPORT_DIR="$out" sh bench/report/report.sh >"$log" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
    fail "report.sh exited $rc"
    tail -n 20 "$log"
fi
page="$out/index.html"
if [ ! -s "$page" ]; then
    fail "no $page"
    exit 0
fi

# src="..." of <img> and data="..." of <object>, one per line.
refs=$(awk '/<img|<object/ {
    s = $0
    while (match(s, /(src|data)="[^"]*"/)) {
        v = substr(s, RSTART, RLENGTH); sub(/^[a-z]*="/, "", v); sub(/"$/, "", v)
        print v
        s = substr(s, RSTART + RLENGTH)
    }
}' "$page")
[ -n "$refs" ] || fail "the page shows no plot"
for r in $refs; do
    case $r in
    *.svg) ;;
    *) fail "$r is not an SVG file"; continue ;;
    esac
    f="$out/$r"
    if [ ! -s "$f" ]; then
        fail "$r is shown but $f is missing"
    elif command -v xmllint >/dev/null 2>&1; then
        xmllint --noout "$f" 2>/dev/null || fail "$r is not well-formed XML"
    else
        grep -q '<svg' "$f" || fail "$r has no <svg root"
    fi
    grep -q '<script' "$f" 2>/dev/null && fail "$r carries a script"
done

want="workers.svg routes.svg latency.svg"
[ -x "$B/peers/caf_count" ] && [ -x "$B/peers/caf_pingpong" ] && [ -x "$B/peers/zmq_pushpull" ] &&
    [ -x "$B/peers/erl_count" ] && [ -x "$B/peers/erl_pingpong" ] &&
    want="peers.svg $want"
for w in $want; do
    case " $(echo $refs) " in
    *" $w "*) ;;
    *) fail "the page does not show $w" ;;
    esac
done

for j in $(sed -n 's/.*href="\([^"]*\.jsonl\)".*/\1/p' "$page"); do
    if [ ! -s "$out/$j" ]; then
        fail "$j is linked but missing or empty"
    elif grep -qv '^{.*}$' "$out/$j"; then
        fail "$j holds a line that is not a JSON object"
    fi
done
grep -Eq '(src|href)="[a-z]+:' "$page" && fail "the page loads something from elsewhere"
grep -q '<script' "$page" && fail "the page runs a script"

[ "$failed" -eq 0 ] && echo "PASS report"
exit 0
