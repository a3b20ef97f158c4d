#!/usr/bin/env bash
# Lint the engine with Verilator and run every Icarus test bench.
# Exits non-zero on the first failure. Usage: rtl/test.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need=()
command -v iverilog >/dev/null 2>&1 || need+=(iverilog)
command -v verilator >/dev/null 2>&1 || need+=(verilator)
if [ "${#need[@]}" -gt 0 ]; then
    echo "rtl/test.sh: installing iverilog verilator (missing: ${need[*]})"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    $SUDO apt-get install -y iverilog verilator
fi

build="$(mktemp -d "${TMPDIR:-/tmp}/atomik-rtl.XXXXXX")"
trap 'rm -rf "$build"' EXIT

echo "== verilator lint"
for cfg in "1 256" "2 256" "4 256" "8 256" "8 2" "1 2" "4 4096"; do
    set -- $cfg
    verilator --lint-only -Wall -GNUM_BANKS="$1" -GSLOTS_PER_BANK="$2" \
        "$here/atomik_engine.v"
    echo "lint ok: atomik_engine NUM_BANKS=$1 SLOTS_PER_BANK=$2"
done
for banks in 1 2 4 8; do
    verilator --lint-only -Wall -GNUM_BANKS="$banks" --top-module atomik_axi_top \
        "$here/atomik_axi_top.v" "$here/axil_csr_bridge.v" "$here/atomik_engine.v"
    echo "lint ok: atomik_axi_top NUM_BANKS=$banks"
done

echo "== icarus test benches"
for cfg in "1 16 1" "2 16 2" "4 16 3" "8 16 4" "2 256 5" "8 64 6" "1 2 7"; do
    set -- $cfg
    out="$build/tb_$1_$2.vvp"
    iverilog -g2012 -Wall -Ptb.NUM_BANKS="$1" -Ptb.SLOTS_PER_BANK="$2" -Ptb.SEED="$3" \
        -o "$out" "$here/tb/tb_engine.v" "$here/atomik_engine.v"
    log="$build/tb_$1_$2.log"
    if ! vvp -n "$out" >"$log" 2>&1; then
        cat "$log"
        echo "FAIL: tb_engine NUM_BANKS=$1 SLOTS_PER_BANK=$2"
        exit 1
    fi
    if ! grep -q "^PASS tb_engine" "$log"; then
        cat "$log"
        echo "FAIL: tb_engine NUM_BANKS=$1 SLOTS_PER_BANK=$2 (no PASS line)"
        exit 1
    fi
    tail -n 1 "$log"
done
for banks in 1 2 4 8; do
    out="$build/tb_axi_$banks.vvp"
    iverilog -g2012 -Wall -Ptb_axi.NUM_BANKS="$banks" -o "$out" "$here/tb/tb_axi_top.v" \
        "$here/atomik_axi_top.v" "$here/axil_csr_bridge.v" "$here/atomik_engine.v"
    log="$build/tb_axi_$banks.log"
    if ! vvp -n "$out" >"$log" 2>&1 || ! grep -q "^PASS tb_axi_top" "$log"; then
        cat "$log"
        echo "FAIL: tb_axi_top NUM_BANKS=$banks"
        exit 1
    fi
    tail -n 1 "$log"
done
echo "rtl: all lint and test benches passed"
