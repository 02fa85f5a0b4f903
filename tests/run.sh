#!/bin/sh
# Runs every test program given and totals them in one closing line,
# "N passed, M failed". cmocka programs report "[  PASSED  ] N test(s)." and
# "[  FAILED  ] M test(s)"; check_*.sh scripts print "PASS name" / "FAIL name".
# A program that dies without its summary (a crash, a sanitizer report) counts
# as one failure, so nothing fails silently.
passed=0
failed=0
log_dir="${BUILD:-build}/test-logs"
mkdir -p "$log_dir"
for t in "$@"; do
    name=$(basename "$t")
    log="$log_dir/$name.log"
    start=$(date +%s)
    case "$t" in
        *.sh) BUILD="${BUILD:-build}" sh "$t" >"$log" 2>&1 ;;
        *) "$t" >"$log" 2>&1 ;;
    esac
    rc=$?
    secs=$(( $(date +%s) - start ))
    case "$t" in
        *.sh)
            p=$(grep -c '^PASS ' "$log")
            f=$(grep -c '^FAIL ' "$log") ;;
        *)
            p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
            f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1) ;;
    esac
    p=${p:-0}
    f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1   # died before it could report
    fi
    if [ "$f" -ne 0 ]; then
        echo "FAIL $name ($p passed, $f failed, ${secs}s): log follows"
        tail -60 "$log"
    else
        echo "ok   $name ($p passed, ${secs}s)"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
