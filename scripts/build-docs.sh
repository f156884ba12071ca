#!/bin/sh
# The HTML documentation (`make docs`): Doxygen over docs/Doxyfile, the
# Markdown pages of docs/ and the C API reference from include/tapio.h, into
# ${BUILD:-build}-docs/html. Any Doxygen warning fails it (WARN_AS_ERROR),
# and every warning is printed. The last line is a suite summary
# for scripts/run-tests.sh: "1 passed, 0 failed" or "0 passed, 1 failed".
set -u

cd "$(dirname "$0")/.." || exit 1
OUT=${DOCS_OUT:-${BUILD:-build}-docs}

fail() {
    echo "docs: $*"
    echo "0 passed, 1 failed"
    exit 1
}

command -v doxygen >/dev/null || fail "doxygen is not installed (make deps installs it)"
# The version is defined once, in tapio.h.
version=$(sed -n 's/^#define TAPIO_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' \
    include/tapio.h | paste -sd. -)
[ -n "$version" ] || fail "no version in include/tapio.h"
rm -rf "$OUT/html"
mkdir -p "$OUT" || fail "cannot make $OUT"
log="$OUT/doxygen-warnings.log"
if ! TAPIO_VERSION=$version TAPIO_DOCS_OUT=$OUT doxygen docs/Doxyfile >"$log" 2>&1 ||
    [ -s "$log" ]; then
    cat "$log"
    fail "Doxygen warned (see above): fix the doc comment or page"
fi
echo "docs: $OUT/html/index.html (tapio $version)"
echo "1 passed, 0 failed"
