#!/bin/sh
# Checks the man page against the header it summarises, so neither drifts:
# every error code of HY_ERR_TABLE appears in docs/hypha.3 with its text,
# every HY_API call of kernel/hypha.h appears in it, and groff renders it
# without a warning (skipped, with no line, when groff is not installed).
# Prints "PASS name" or "FAIL name" per check (tests/run.sh counts them).
cd "$(dirname "$0")/.." || exit 1
H=kernel/hypha.h
MAN=docs/hypha.3

# The rows of HY_ERR_TABLE: X(NAME, code, "text").
missing=""
n=0
rows=$(sed -n 's/^ *X(\(E[A-Z]*\), *-[0-9]*, *"\(.*\)").*/\1 \2/p' "$H")
if [ -z "$rows" ]; then
    missing=" (no rows found in HY_ERR_TABLE)"
fi
while read -r name text; do
    [ -n "$name" ] || continue
    n=$((n + 1))
    grep -qw "HY_$name" "$MAN" || missing="$missing HY_$name"
    grep -qF "$text" "$MAN" || missing="$missing HY_$name(text: $text)"
done <<ROWS
$rows
ROWS
if [ -z "$missing" ]; then
    echo "PASS error codes: the $n of HY_ERR_TABLE are in $MAN"
else
    echo "FAIL error codes: missing from $MAN:$missing"
fi

# The public calls: declarations that start a line with HY_API; the name is
# the word before the first parenthesis.
missing=""
n=0
for fn in $(sed -n 's/^HY_API [^(]*[ *]\([a-z_][a-z_0-9]*\)(.*/\1/p' "$H"); do
    n=$((n + 1))
    grep -qw "$fn" "$MAN" || missing="$missing $fn"
done
if [ "$n" -eq 0 ]; then
    echo "FAIL public calls: no HY_API declaration found in $H"
elif [ -z "$missing" ]; then
    echo "PASS public calls: the $n HY_API calls of $H are in $MAN"
else
    echo "FAIL public calls: missing from $MAN:$missing"
fi

# The page renders cleanly (what man -l shows).
if command -v groff >/dev/null 2>&1; then
    warnings=$(groff -man -Tutf8 -ww "$MAN" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -eq 0 ] && [ -z "$warnings" ]; then
        echo "PASS groff renders $MAN without warnings"
    else
        echo "FAIL groff renders $MAN with warnings (exit $rc)"
        echo "$warnings"
    fi
fi
