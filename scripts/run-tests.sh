#!/bin/sh
# Every test of the project, each suite's summary kept, one total at the end:
#   1. the C tests under ASan+UBSan, on the io_uring, epoll and poll backends (ctest),
#      the threaded ones under TSan, and a short run of each libFuzzer target
#      (scripts/run-fuzzers.sh; FUZZ_SMOKE_SECONDS each, default 10), and a
#      C program built against an installed libtapio with find_package and
#      with pkg-config (tests/packaging/check-install.sh, in build-install)
#   2. for each CPython on the machine (scripts/find-pythons.sh; PYTHONS="..."
#      to choose): the Python suite, the same tests on tapio and on stock
#      asyncio, and CPython's own test_asyncio against tapio (on the default
#      backend, io_uring)
#   3. with PYTHON: the Python suite and test_asyncio again on the epoll
#      backend; the connection soak (memory and fds flat over 100,000
#      cycles; 20,000 TLS cycles)
#   4. with Debian's python3, which has the frameworks and clients: aiohttp
#      and websockets on tapio, tapio's gunicorn workers, and the real-world
#      suite (tests/python/realworld_*_suite.py): real redis-server and
#      PostgreSQL started in temporary directories, redis-py, asyncpg,
#      uvicorn with Starlette and FastAPI, gunicorn, httpx, aiohttp, anyio
#      and pytest-asyncio, each on tapio and on stock asyncio
#   5. the documentation (scripts/build-docs.sh, `make docs`): Doxygen over
#      docs/ and include/tapio.h, failing on any warning (an undocumented
#      declaration of tapio.h included)
# The last line is "N passed, N failed" over all of them.
set -u

PYTHON=${PYTHON:-python3}
PYTHONS=${PYTHONS:-$(./scripts/find-pythons.sh)}
SAN_BUILD=${TEST_BUILD:-build-sanitize}
TSAN_BUILD=${TSAN_BUILD:-build-tsan}
PY_BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
LOGS=$(mktemp -d)
status=0

# record NAME COMMAND...: run a suite, keeping its output and exit status
# (may run in the background); show NAME: print them, note a failure.
record() {
    name=$1
    shift
    "$@" >"$LOGS/$name.log" 2>&1
    echo $? >"$LOGS/$name.rc"
}

show() {
    echo "=== $1"
    cat "$LOGS/$1.log"
    [ "$(cat "$LOGS/$1.rc")" -eq 0 ] || status=1
}

# run NAME COMMAND...: run a suite in the foreground and show it.
run() {
    record "$@"
    show "$1"
}

ctest_suite() {
    cmake -S . -B "$SAN_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTAPIO_SANITIZE=ON \
        -DTAPIO_BUILD_BENCH=OFF -DTAPIO_BUILD_PYTHON=OFF >/dev/null || return 1
    cmake --build "$SAN_BUILD" || return 1
    export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    (cd "$SAN_BUILD" && ctest --output-on-failure -j "$JOBS")
}

# python_build PYTHON DIR: the extension for that interpreter, into
# python/tapio/ (its file name carries the interpreter's ABI tag).
# ThreadSanitizer over the C suite on one backend: the threads (call_soon_
# threadsafe, wakers, name-resolution workers, exit waiters) do not depend
# on the backend; io_uring's ring does, for its thread and fork tests.
tsan_suite() {
    cmake -S . -B "$TSAN_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTAPIO_SANITIZE_THREAD=ON \
        -DTAPIO_BUILD_BENCH=OFF -DTAPIO_BUILD_EXAMPLES=OFF -DTAPIO_BUILD_PYTHON=OFF \
        >/dev/null || return 1
    cmake --build "$TSAN_BUILD" || return 1
    # every test on epoll; on io_uring, those where threads meet the ring (a
    # loop run by another thread, a fork while it runs)
    (cd "$TSAN_BUILD" && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure \
        -j "$JOBS" -R '^epoll\.|^io_uring\..*(thread|fork|inherited)')
}

python_build() {
    cmake -S . -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTAPIO_BUILD_PYTHON=ON \
        -DPython3_EXECUTABLE="$(command -v "$1")" >/dev/null || return 1
    cmake --build "$2"
}

# python_suites PYTHON: the Python suite and CPython's test_asyncio, side by
# side (both mostly wait on sockets and timers).
python_suites() {
    version=$("$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
    if ! python_build "$1" "$PY_BUILD-py$version" >"$LOGS/build.out" 2>&1; then
        cat "$LOGS/build.out"
        echo "0 passed, 1 failed" >"$LOGS/python-build-$version.log"
        status=1
        return
    fi
    record "python-$version" "$1" tests/python/run.py &
    record "cpython-$version" "$1" tests/python/cpython_asyncio.py --loop tapio
    wait
    show "python-$version"
    show "cpython-$version"
}

run c ctest_suite
run tsan tsan_suite
run fuzz env FUZZ_SECONDS="${FUZZ_SMOKE_SECONDS:-10}" ./scripts/run-fuzzers.sh
run install ./tests/packaging/check-install.sh
export PYTHONPATH=python
for interpreter in $PYTHONS; do
    python_suites "$interpreter"
done
if python_build "$PYTHON" "$PY_BUILD" >"$LOGS/build.out" 2>&1; then
    record python-epoll env TAPIO_BACKEND=epoll "$PYTHON" tests/python/run.py &
    record cpython-epoll env TAPIO_BACKEND=epoll "$PYTHON" \
        tests/python/cpython_asyncio.py --loop tapio
    wait
    show python-epoll
    show cpython-epoll
    run soak "$PYTHON" tests/python/soak_connections.py
    run soak-tls "$PYTHON" tests/python/soak_connections.py --tls --cycles 20000 --warmup 3000
    run leaks "$PYTHON" tests/python/leak_loops.py --cycles 10000
    # The frameworks, clients and services are Debian packages; the Python
    # ones are importable by Debian's python only.
    if python_build /usr/bin/python3 "$PY_BUILD-debian" >"$LOGS/build.out" 2>&1; then
        run frameworks /usr/bin/python3 tests/python/run.py frameworks_suite workers_suite \
            realworld_http_suite realworld_redis_suite realworld_postgres_suite \
            realworld_anyio_suite realworld_pytest_suite
    else
        cat "$LOGS/build.out"
        echo "0 passed, 1 failed" >"$LOGS/frameworks-build.log"
        status=1
    fi
else
    cat "$LOGS/build.out"
    echo "0 passed, 1 failed" >"$LOGS/python-build.log"
    status=1
fi
run docs ./scripts/build-docs.sh

# Sum the suites' summaries: ctest's "N tests failed out of M" and the
# "N passed, N failed" lines of the others.
passed=0
failed=0
for log in "$LOGS"/*.log; do
    line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -n 1)
    if [ -n "$line" ]; then
        total=$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')
        bad=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed.*/\1/')
        passed=$((passed + total - bad))
        failed=$((failed + bad))
        continue
    fi
    line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
    if [ -n "$line" ]; then
        passed=$((passed + $(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')))
        failed=$((failed + $(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')))
    else
        echo "no summary in $(basename "$log" .log): counted as a failure"
        failed=$((failed + 1))
    fi
done
rm -rf "$LOGS"
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
