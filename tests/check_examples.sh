#!/bin/sh
# Runs every example, built as C and as C++, and compares what it prints
# (stdout and stderr) with examples/<name>.expected. An example that must run
# in a special way (twice, with an argument) says how in examples/<name>.run,
# a shell fragment that runs "$EXE". Prints "PASS name" or "FAIL name" per
# build (tests/run.sh counts them); an example without .expected fails.
cd "$(dirname "$0")/.." || exit 1
B="${BUILD:-build}/examples"
for src in examples/*.c; do
    name=$(basename "$src" .c)
    for build in c cxx; do
        EXE="$B/$name"
        [ "$build" = cxx ] && EXE="$B/cxx/$name"
        label="$name ($build)"
        if [ ! -f "examples/$name.expected" ]; then
            echo "FAIL $label: examples/$name.expected is missing"
            continue
        fi
        if [ -f "examples/$name.run" ]; then
            got=$(EXE="$EXE" sh "examples/$name.run" 2>&1)
        else
            got=$("$EXE" 2>&1)
        fi
        rc=$?
        want=$(cat "examples/$name.expected")
        if [ "$rc" -eq 0 ] && [ "$got" = "$want" ]; then
            echo "PASS $label"
        else
            echo "FAIL $label (exit $rc)"
            echo "--- want"; echo "$want"; echo "--- got"; echo "$got"
        fi
    done
done
