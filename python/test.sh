#!/usr/bin/env bash
# The Python package as a user gets it: build the wheel, install it into a
# fresh venv of the system's Python (its sqlite3 loads extensions) with no
# index, and run tests/test_wheel.py there with the standard library's
# sqlite3. A Python built without extension loading (pyenv's default) must
# get load()'s RuntimeError, not a crash.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../scripts/lib.sh"
apt_install python3 python3-venv
work="$(mktemp -d /tmp/atomik-wheel.XXXXXX)"
trap 'rm -rf "$work"' EXIT
wheel="$("$here/build-wheel.sh" "$work/dist")"
echo "built $(basename "$wheel")"
case "$(basename "$wheel")" in
    *-py3-none-linux_*.whl) ;;
    *) echo "FAIL: the wheel is not tagged py3-none-<platform>: $wheel" >&2; exit 1 ;;
esac
/usr/bin/python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --no-index "$wheel"
(cd "$work" && "$work/venv/bin/python" "$here/tests/test_wheel.py")
if ! python3 -c 'import sqlite3, sys; sys.exit(not hasattr(sqlite3.Connection, "enable_load_extension"))'; then
    python3 -m venv "$work/venv-noext"
    "$work/venv-noext/bin/pip" install --quiet --no-index "$wheel"
    out="$(cd "$work" && "$work/venv-noext/bin/python" -c '
import sqlite3, atomik_sqlite
try:
    atomik_sqlite.load(sqlite3.connect(":memory:"))
except RuntimeError as e:
    print(e)
')"
    case "$out" in
        *"built without extension loading"*) echo "a Python without extension loading: $out" ;;
        *) echo "FAIL: load() in a Python without extension loading said: $out" >&2; exit 1 ;;
    esac
fi
echo "python wheel: ok"
