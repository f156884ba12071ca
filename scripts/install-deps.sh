#!/bin/sh
# Install the Debian packages the build, the tests and the benchmarks need.
# Idempotent: asks apt only for what is missing.
set -eu

# cmake and ninja-build build everything, `pip install .` included (its
# backend, tools/tapio_build.py, drives the same CMake build); clang and its
# libFuzzer runtime (libclang-rt-14-dev) build the fuzzers; liburing-dev the
# io_uring backend. The real-world suite runs Debian's redis-server and
# PostgreSQL with their Python clients, httpx, anyio, Starlette/FastAPI and
# pytest-asyncio; doxygen builds the docs and matplotlib draws their charts.
PACKAGES="cmake ninja-build gcc clang libclang-rt-14-dev pkg-config libuv1-dev python3-dev python3-uvloop python3-aiohttp python3-websockets python3-uvicorn python3-httptools gunicorn wrk openssl libssl-dev libpython3.11-testsuite liburing-dev redis-server postgresql python3-redis python3-asyncpg python3-httpx python3-anyio python3-starlette python3-fastapi python3-pytest python3-pytest-asyncio doxygen python3-matplotlib"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing
