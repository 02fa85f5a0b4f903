#!/bin/sh
# Runs each example and compares its output with what it must print.
# Prints "PASS name" or "FAIL name" per example (tests/run.sh counts them).
B="${BUILD:-build}/examples"
check() {
    name=$1
    want=$2
    got=$("$B/$name" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] && [ "$got" = "$want" ]; then
        echo "PASS $name"
    else
        echo "FAIL $name (exit $rc)"
        echo "--- want"; echo "$want"; echo "--- got"; echo "$got"
    fi
}
check hello "hello, world"
check orders "orders://item/abc/add: no route matches the path
item 1: 55
item 2: 55
item 3: 55"
check batch "accepted 100 of 100
accepted 3 of 10: no route matches the path
total 5056"
check introspect "total: sent 4, handled 3, queued 1
greet: sent 3, handled 3, actors 1"
