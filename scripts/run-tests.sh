#!/bin/sh
# Build libtapio with ASan+UBSan and run every test on both I/O backends
# (each C test is registered twice in ctest: epoll.NAME and poll.NAME).
# Ends with one summary line: "N passed, N failed".
set -u

BUILD=${TEST_BUILD:-build-sanitize}
JOBS=${JOBS:-2}

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTAPIO_SANITIZE=ON \
    -DTAPIO_BUILD_BENCH=OFF >/dev/null || exit 1
cmake --build "$BUILD" || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

log="$BUILD/ctest.log"
(cd "$BUILD" && ctest --output-on-failure -j "$JOBS") 2>&1 | tee "$log"

summary=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -n 1)
total=$(echo "$summary" | sed -E 's/.*out of ([0-9]+).*/\1/')
failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) tests failed.*/\1/')
if [ -z "$summary" ]; then
    echo "0 passed, 1 failed"
    exit 1
fi
echo "$((total - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
