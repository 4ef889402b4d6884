#!/usr/bin/env bash
# The test command (see README): everything a fresh machine needs, then the whole suite.
#   1. a real Kafka-protocol broker (tansu), installed if missing, started on a free port;
#      tests that need it read DRIFTGATE_TEST_BROKER and fail (never skip) without it in CI
#   2. real Airflows 3 and 2 (from PyPI into virtualenvs, once per machine) for the Airflow
#      executor tests: DRIFTGATE_TEST_AIRFLOW(2) and DRIFTGATE_TEST_AIRFLOW(2)_HOME
#   3. a real PostgreSQL (Debian's package, installed if missing; initdb in a temporary
#      directory, a free port): DRIFTGATE_TEST_POSTGRES, for the store's tests on PostgreSQL
#   4. a real browser (Debian's chromium, installed if missing) for the dashboard's tests:
#      DRIFTGATE_TEST_BROWSER
#   5. formatting and lints (OpenSSL headers installed first when missing: librdkafka links it)
#   6. every test target (unit, integration, property, calibration; benches run once as tests)
set -euo pipefail
cd "$(dirname "$0")/.."
# A clean clone gains nothing from incremental compilation; its files only take disk space.
export CARGO_INCREMENTAL=0
# A build that runs out of disk fails in the linker with a bus error: say so up front.
avail_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
echo "disk: $((avail_kb / 1024 / 1024)) GiB free here; the build and tests need about 8"
if [ "$avail_kb" -lt $((8 * 1024 * 1024)) ]; then
  echo "warning: less than 8 GiB free: the build may fail to link for want of space" >&2
fi

# librdkafka is built with OpenSSL (TLS and SASL for managed Kafka): it needs its headers.
if ! pkg-config --exists openssl 2>/dev/null; then
  echo "installing OpenSSL headers and pkg-config (librdkafka's TLS)" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq libssl-dev pkg-config >&2
fi

source scripts/broker.sh
source scripts/airflow.sh
source scripts/postgres.sh
source scripts/browser.sh
ensure_tansu
ensure_chromium
echo "browser: $DRIFTGATE_TEST_BROWSER"
ensure_postgres
ensure_airflow "$AIRFLOW3_VERSION"
ensure_airflow "$AIRFLOW2_VERSION"
work=$(mktemp -d)
trap 'stop_airflow "$work/airflow"; stop_airflow "$work/airflow2"; stop_broker; stop_postgres; rm -rf "$work"' EXIT
port=$(free_port)
start_broker "$port" "$work"
export DRIFTGATE_TEST_BROKER="127.0.0.1:$port"
# The broker answers Kafka admin requests, not just TCP: create a topic through it.
"$TANSU" topic create driftgate-smoke --partitions 2 --broker "tcp://$DRIFTGATE_TEST_BROKER" >/dev/null
echo "tansu broker ready at $DRIFTGATE_TEST_BROKER"
pg_port=$(free_port)
start_postgres "$pg_port" "$work"
export DRIFTGATE_TEST_POSTGRES="postgres://driftgate@127.0.0.1:$pg_port"
echo "PostgreSQL ready at $DRIFTGATE_TEST_POSTGRES"
# The Airflows start in the background while the code builds and lints; the tests wait for them.
export DRIFTGATE_TEST_AIRFLOW="http://127.0.0.1:$(free_port)"
export DRIFTGATE_TEST_AIRFLOW_HOME="$work/airflow"
start_airflow "$AIRFLOW3_VERSION" "${DRIFTGATE_TEST_AIRFLOW##*:}" "$DRIFTGATE_TEST_AIRFLOW_HOME" &
airflow_start=$!
export DRIFTGATE_TEST_AIRFLOW2="http://127.0.0.1:$(free_port)"
export DRIFTGATE_TEST_AIRFLOW2_HOME="$work/airflow2"
start_airflow "$AIRFLOW2_VERSION" "${DRIFTGATE_TEST_AIRFLOW2##*:}" "$DRIFTGATE_TEST_AIRFLOW2_HOME" &
airflow2_start=$!

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Benchmarks once each as tests (they must keep building and running), then the suites.
cargo test --benches --locked
cargo build --tests --locked
wait "$airflow_start" || { echo "airflow $AIRFLOW3_VERSION did not start" >&2; exit 1; }
echo "airflow $AIRFLOW3_VERSION ready at $DRIFTGATE_TEST_AIRFLOW"
wait "$airflow2_start" || { echo "airflow $AIRFLOW2_VERSION did not start" >&2; exit 1; }
echo "airflow $AIRFLOW2_VERSION ready at $DRIFTGATE_TEST_AIRFLOW2"
set +e

cargo test --lib --bins --tests --locked 2>&1 | tee "$work/test.log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -o '[0-9]* passed' "$work/test.log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -o '[0-9]* failed' "$work/test.log" | awk '{s += $1} END {print s + 0}')
echo "total: $passed passed, $failed failed"
exit "$status"
