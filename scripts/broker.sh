#!/usr/bin/env bash
# Helpers for a local tansu broker (a real Kafka-protocol broker) used by the tests.
# Source this file, then:
#   ensure_tansu            install tansu 0.6.0 unless it is already on PATH or in ~/.cargo/bin
#   start_broker PORT DIR   start it on 127.0.0.1:PORT (memory storage, log in DIR) and wait until
#                           it accepts connections; fails loudly after 60 s
#   stop_broker             stop it
# The first install builds tansu from crates.io: about 20 minutes on 2 cores, once per machine.

TANSU_VERSION=0.6.0

ensure_tansu() {
  if command -v tansu >/dev/null 2>&1; then
    TANSU=$(command -v tansu)
  elif [ -x "$HOME/.cargo/bin/tansu" ]; then
    TANSU="$HOME/.cargo/bin/tansu"
  else
    echo "installing tansu $TANSU_VERSION (first time on this machine: ~20 minutes)" >&2
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore >&2
    TANSU="$HOME/.cargo/bin/tansu"
  fi
  export TANSU
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_broker() {
  local port=$1 dir=$2
  local url="tcp://127.0.0.1:$port"
  "$TANSU" broker --listener-url "$url" --advertised-listener-url "$url" \
    --storage-engine memory://tansu/ >"$dir/tansu.log" 2>&1 &
  BROKER_PID=$!
  export BROKER_PID
  # Readiness is the listener accepting a connection; poll it, bounded.
  local deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "tansu exited during start-up; its log:" >&2
      cat "$dir/tansu.log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "tansu did not accept connections on port $port within 60 s; its log:" >&2
      cat "$dir/tansu.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

stop_broker() {
  if [ -n "${BROKER_PID:-}" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
}
