#!/bin/sh
# The CPython interpreters tapio is tested on, one path a line: Debian's
# python3, then every pyenv CPython from 3.11 on. Each supported minor
# version that is not on the machine gets a "missing" line on stderr, so
# that a run shows what it did not test.
set -u

SUPPORTED="3.11 3.12 3.13 3.14"

found=""
add() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || return 0
    echo "$1"
    found="$found $("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
}

[ -x /usr/bin/python3 ] && add /usr/bin/python3
# pyenv's root, also when pyenv is not on PATH (a bare CI environment).
if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root)
else
    root=${PYENV_ROOT:-${HOME:-/root}/.pyenv}
fi
for dir in "$root"/versions/3.*; do
    [ -x "$dir/bin/python3" ] && add "$dir/bin/python3"
done

for minor in $SUPPORTED; do
    case " $found " in
        *" $minor "*) ;;
        *) echo "missing: no CPython $minor on this machine, not tested" >&2 ;;
    esac
done
