#!/usr/bin/env bash
# Build the atomik-sqlite wheel: the loadable extension (release, its own
# target dir, as sqlite_atomik/test-loadable.sh builds it), copied into the
# package, then `pip wheel` (setuptools, in pip's isolated build
# environment). Usage: python/build-wheel.sh OUT_DIR; prints the wheel's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: build-wheel.sh OUT_DIR}"
export CARGO_TARGET_DIR="${ATOMIK_LOADABLE_TARGET_DIR:-$here/../target/loadable}"
cargo build --locked --manifest-path "$here/../sqlite_atomik/Cargo.toml" -p sqlite_atomik \
    --release --no-default-features --features loadable >&2
cp "$CARGO_TARGET_DIR/release/libsqlite_atomik.so" "$here/atomik_sqlite/"
# Build from a copy: setuptools writes build/ and *.egg-info next to the
# sources otherwise.
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp -r "$here/pyproject.toml" "$here/setup.py" "$here/README.md" "$here/atomik_sqlite" "$src/"
rm -f "$here/atomik_sqlite/libsqlite_atomik.so"
mkdir -p "$out"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$out" "$src" >&2
ls "$out"/atomik_sqlite-*.whl
