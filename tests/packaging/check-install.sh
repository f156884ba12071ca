#!/bin/sh
# libtapio as a C program outside the tree sees it: a Release build installed
# into a temporary prefix, then tests/packaging/consumer built against it
# with CMake (find_package(tapio CONFIG): tapio::tapio and
# tapio::tapio_static) and with pkg-config (shared, and static from
# `--static`), each program run and its output checked. INSTALL_BUILD names
# the build directory (default build-install). Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
BUILD=${INSTALL_BUILD:-build-install}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PREFIX=$WORK/prefix
CONSUMER=tests/packaging/consumer
passed=0
failed=0

# check NAME COMMAND...: one check; its output is shown when it fails.
check() {
    name=$1
    shift
    if "$@" >"$WORK/out" 2>&1; then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        sed 's/^/     /' "$WORK/out"
        failed=$((failed + 1))
    fi
}

version=$(sed -nE 's/^#define TAPIO_VERSION_(MAJOR|MINOR|PATCH) ([0-9]+)$/\2/p' \
          include/tapio.h | paste -sd.)

install_release() {
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DTAPIO_BUILD_EXAMPLES=OFF -DTAPIO_BUILD_BENCH=OFF -DBUILD_TESTING=OFF \
        -DTAPIO_BUILD_PYTHON=OFF &&
        cmake --build "$BUILD" &&
        cmake --install "$BUILD" --prefix "$PREFIX"
}

build_with_cmake() {
    cmake -S "$CONSUMER" -B "$WORK/cmake" -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" \
        -DTAPIO_VERSION="$version" && cmake --build "$WORK/cmake"
}

pkg_config() {
    PKG_CONFIG_PATH=$(echo "$PREFIX"/lib*/pkgconfig) pkg-config "$@"
}

build_with_pkg_config() {
    cc -o "$WORK/pc_shared" "$CONSUMER/main.c" $(pkg_config --cflags --libs tapio)
}

# The static library by its file name: libtapio.so sits beside it.
build_static_with_pkg_config() {
    cc -o "$WORK/pc_static" "$CONSUMER/main.c" $(pkg_config --cflags tapio) \
        $(pkg_config --static --libs tapio | sed 's/-ltapio\b/-l:libtapio.a/')
}

# runs PROGRAM: it exits 0 and says it ran the installed version's loop.
runs() {
    output=$(LD_LIBRARY_PATH=$(echo "$PREFIX"/lib*) "$1") || return 1
    echo "$output"
    [ "$output" = "tapio $version: the loop ran and stopped" ]
}

# links_installed PROGRAM: its libtapio.so is the prefix's.
links_installed() {
    LD_LIBRARY_PATH=$(echo "$PREFIX"/lib*) ldd "$1" | grep "libtapio\.so.* => $PREFIX/"
}

# statically_linked PROGRAM: no libtapio.so needed.
statically_linked() {
    libraries=$(ldd "$1") || return 1
    echo "$libraries"
    ! echo "$libraries" | grep -q libtapio
}

check "install a Release build into a prefix" install_release
check "find_package(tapio $version EXACT CONFIG) builds the consumer" build_with_cmake
check "tapio::tapio program runs" runs "$WORK/cmake/consumer_shared"
check "tapio::tapio program uses the installed libtapio.so" \
    links_installed "$WORK/cmake/consumer_shared"
check "tapio::tapio_static program runs" runs "$WORK/cmake/consumer_static"
check "tapio::tapio_static program needs no libtapio.so" \
    statically_linked "$WORK/cmake/consumer_static"
check "pkg-config --libs tapio builds the consumer" build_with_pkg_config
check "pkg-config program runs" runs "$WORK/pc_shared"
check "pkg-config program uses the installed libtapio.so" links_installed "$WORK/pc_shared"
check "pkg-config --static --libs tapio builds the consumer" build_static_with_pkg_config
check "pkg-config --static program runs" runs "$WORK/pc_static"
check "pkg-config --static program needs no libtapio.so" statically_linked "$WORK/pc_static"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
