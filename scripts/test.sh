#!/usr/bin/env bash
# The test command (see README): everything a fresh machine needs, then the whole suite.
#   1. a real Kafka-protocol broker (tansu), installed if missing, started on a free port;
#      tests that need it read DRIFTGATE_TEST_BROKER and fail (never skip) without it in CI
#   2. formatting and lints
#   3. every test target (unit, integration, property, calibration; benches run once as tests)
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/broker.sh
ensure_tansu
work=$(mktemp -d)
trap 'stop_broker; rm -rf "$work"' EXIT
port=$(free_port)
start_broker "$port" "$work"
export DRIFTGATE_TEST_BROKER="127.0.0.1:$port"
# The broker answers Kafka admin requests, not just TCP: create a topic through it.
"$TANSU" topic create driftgate-smoke --partitions 2 --broker "tcp://$DRIFTGATE_TEST_BROKER" >/dev/null
echo "tansu broker ready at $DRIFTGATE_TEST_BROKER"

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Benchmarks once each as tests (they must keep building and running), then the suites.
cargo test --benches --locked
set +e
cargo test --lib --bins --tests --locked 2>&1 | tee "$work/test.log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -o '[0-9]* passed' "$work/test.log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -o '[0-9]* failed' "$work/test.log" | awk '{s += $1} END {print s + 0}')
echo "total: $passed passed, $failed failed"
exit "$status"
