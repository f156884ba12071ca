#!/bin/sh
# Build the libFuzzer targets of tests/fuzz with clang and run each one,
# starting from its seed corpus (tests/fuzz/corpus/<name>/, only read: what
# a run finds goes to a temporary directory), for FUZZ_SECONDS seconds
# (default 60; scripts/run-tests.sh runs a short one). A crash, leak,
# sanitizer report or timeout fails that fuzzer; its input is shown.
# Prints each fuzzer's executions, then "N passed, N failed".
set -u

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZERS="fuzz_tls_server fuzz_tls_client fuzz_address"

CC=${FUZZ_CC:-clang} cmake -S . -B "$FUZZ_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DTAPIO_BUILD_FUZZERS=ON -DBUILD_TESTING=OFF -DTAPIO_BUILD_EXAMPLES=OFF \
    -DTAPIO_BUILD_BENCH=OFF -DTAPIO_BUILD_PYTHON=OFF >/dev/null || {
    echo "0 passed, 1 failed"; exit 1; }
cmake --build "$FUZZ_BUILD" -j "${JOBS:-2}" >/dev/null || {
    cmake --build "$FUZZ_BUILD"; echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d)
passed=0
failed=0
for name in $FUZZERS; do
    mkdir -p "$work/$name"
    "$FUZZ_BUILD/tests/fuzz/$name" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
        -artifact_prefix="$work/$name-" -print_final_stats=1 \
        "$work/$name" "tests/fuzz/corpus/$name" >"$work/$name.log" 2>&1
    rc=$?
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$work/$name.log")
    if [ "$rc" -eq 0 ]; then
        echo "$name: ${runs:-?} executions in ${FUZZ_SECONDS} s, no crash"
        passed=$((passed + 1))
    else
        tail -n 40 "$work/$name.log"
        for a in "$work/$name"-*; do
            [ -e "$a" ] && echo "input: $a" && od -An -tx1 "$a" | head -n 8
        done
        echo "$name: FAILED after ${runs:-?} executions"
        failed=$((failed + 1))
    fi
done
rm -rf "$work"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
