#!/usr/bin/env bash
# Window memory and checkpoint size against window size, summarised (auto) or raw (off):
# 20 numeric features, 1k / 100k / 1M / 10M records in one open window. Each run is its own
# process, so its peak RSS is its own. Prints one JSON line per run.
#
# Usage: scripts/bench_window_memory.sh [SIZES...]   (default: 1000 100000 1000000 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example window_memory >&2
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 100000 1000000 10000000)
for records in "${sizes[@]}"; do
    for mode in auto off; do
        target/release/examples/window_memory "$records" "$mode"
    done
done
