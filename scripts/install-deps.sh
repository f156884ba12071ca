#!/bin/sh
# Install the Debian packages the build, the tests and the benchmarks need.
# Idempotent: asks apt only for what is missing.
set -eu

# cmake and ninja-build build everything, `pip install .` included (its
# backend, tools/tapio_build.py, drives the same CMake build); clang and its
# libFuzzer runtime (libclang-rt-14-dev) build the fuzzers.
PACKAGES="cmake ninja-build gcc clang libclang-rt-14-dev pkg-config libuv1-dev python3-dev python3-uvloop python3-aiohttp python3-websockets python3-uvicorn python3-httptools gunicorn wrk openssl libssl-dev libpython3.11-testsuite"

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
