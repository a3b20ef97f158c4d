#!/usr/bin/env bash
# The project's one test command (the README's second set-up command; .ci/run
# calls it). It installs what it needs on a fresh Debian 12 machine, runs
# every test suite, and exits non-zero on the first failure.
#
#   ./scripts/test.sh            everything
#   ATOMIK_SIM_SCHEDULES=20000   more chaos schedules (default 2000)
#   ATOMIK_W4_SCHEDULES=5000     more cross-engine W4 schedules (default 300)
#   ATOMIK_FUZZ_SECONDS=60       fuzz the codec for that long (default 20;
#                                0 skips; needs the nightly toolchain)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

section "workspace tests (core, sqlite_atomik, offload cpu, cli, benches, cross-engine on SQLite)"
cargo test --workspace --locked

section "the SQLite session-extension baseline of the benchmarks (needs libclang for bindgen)"
apt_install libclang-dev
cargo test --locked -p atomik-bench --features session

section "offload: Verilog benches, Verilator lint, simulated-engine differential tests"
offload/test.sh --locked

section "W6 abench on every backend (cpu, simulated RTL)"
cargo run --locked --release -p atomik-cli --features sim -- abench 65537 0xDEADBEEF0BADF00D

section "the installed atomik command (cargo install, as the README says)"
INSTALL_ROOT=$(mktemp -d /tmp/atomik-install.XXXXXX)
cargo install --locked --path cli --root "$INSTALL_ROOT" --target-dir target
"$INSTALL_ROOT/bin/atomik" --version | grep -q "^atomik " \
    || { echo "the installed atomik does not run" >&2; exit 1; }
"$INSTALL_ROOT/bin/atomik" demo --devices 2 --rounds 1 --skus 50 | grep -q "converged: yes" \
    || { echo "the installed atomik's demo did not converge" >&2; exit 1; }
rm -rf "$INSTALL_ROOT"

section "sqlite_atomik: the loadable .so in python3 and the sqlite3 shell; the Python wheel in a fresh venv"
sqlite_atomik/test-loadable.sh
python/test.sh

section "pg_atomik: build, install, pg_regress, isolation, pg_test, concurrency (throwaway cluster)"
pg_atomik/test.sh

section "cross-engine: SQLite device processes + PostgreSQL hubs under chaos (W4), golden script, demo on PostgreSQL"
tests/cross-engine.sh

section "atomik bench, quick: every suite runs and writes its JSON and plots (no timing is asserted)"
BENCH_OUT=$(mktemp -d /tmp/atomik-bench-out.XXXXXX)
cargo run --locked --release -p atomik-cli --features session -- bench --out "$BENCH_OUT"
for f in bench.json bytes_vs_density.svg tps_vs_clients.svg; do
    [ -s "$BENCH_OUT/$f" ] || { echo "atomik bench did not write $f" >&2; exit 1; }
done
# W7 concurrency, briefly: syncs through atomik serve to a PostgreSQL hub,
# the exact-sums oracle checked (the full run: --only w7load alone).
cargo run --locked --release -p atomik-cli --features session -- bench --only w7load \
    --concurrency 1,16 --seconds 1 --repeats 1 --out "$BENCH_OUT"
[ -s "$BENCH_OUT/w7load.json" ] || { echo "atomik bench --only w7load did not write w7load.json" >&2; exit 1; }
# Live push, briefly: a watching device against one polling every second,
# on both hubs (the README's figures: --changes 100).
cargo run --locked --release -p atomik-cli --features session -- bench --only push \
    --changes 20 --out "$BENCH_OUT"
[ -s "$BENCH_OUT/push.json" ] || { echo "atomik bench --only push did not write push.json" >&2; exit 1; }
rm -rf "$BENCH_OUT"

section "clippy and formatting"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd pg_atomik && cargo fmt -- --check && cargo clippy --locked --all-targets -- -D warnings)

section "codec fuzzing"
scripts/fuzz.sh "${ATOMIK_FUZZ_SECONDS:-20}"

section "all test suites passed"
