#!/usr/bin/env bash
# Fuzz the wire decoder with cargo-fuzz for N seconds (default 20), seeded
# with the golden fixtures. Needs the nightly toolchain; installs cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
seconds="${1:-20}"
if [ "$seconds" = "0" ]; then
    echo "fuzzing skipped (ATOMIK_FUZZ_SECONDS=0)"
    exit 0
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzzing skipped: no nightly toolchain on this machine (cargo-fuzz needs it)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly install cargo-fuzz --locked
fi
cd core
# New inputs go to a scratch corpus; the checked-in seeds are read only.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cargo +nightly fuzz run decode "$scratch" fuzz/corpus/decode -- -max_total_time="$seconds" -max_len=4096
