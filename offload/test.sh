#!/usr/bin/env bash
# Test hook for the offload path: RTL lint and test benches, then the crate's
# tests with the Verilated model. Usage: offload/test.sh (from anywhere).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/../rtl/test.sh"
cd "$here/.."
cargo test -p atomik-offload --features sim "$@"
