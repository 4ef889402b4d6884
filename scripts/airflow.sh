#!/usr/bin/env bash
# Helpers for a real Airflow 3 (from PyPI, in a virtualenv, SQLite, 127.0.0.1) used by the
# Airflow executor test. Source this file (after broker.sh, for free_port), then:
#   ensure_airflow              create the virtualenv with apache-airflow unless it exists
#                               (~1 minute, once per machine; AIRFLOW_VENV, default
#                               ~/.cache/driftgate/airflow-3.3.2)
#   start_airflow PORT HOME     `airflow standalone` on 127.0.0.1:PORT with AIRFLOW_HOME=HOME and
#                               the test DAG; waits until the API answers and the DAG is parsed
#   stop_airflow                SIGINT to its session (standalone stops its children on it),
#                               then SIGKILL whatever is left
AIRFLOW_VERSION=3.3.2
AIRFLOW_VENV=${AIRFLOW_VENV:-$HOME/.cache/driftgate/airflow-$AIRFLOW_VERSION}

ensure_airflow() {
  if [ -x "$AIRFLOW_VENV/bin/airflow" ]; then
    return 0
  fi
  echo "installing apache-airflow $AIRFLOW_VERSION into $AIRFLOW_VENV (once: ~1 minute)" >&2
  python3 -m venv "$AIRFLOW_VENV"
  "$AIRFLOW_VENV/bin/pip" install -q "apache-airflow==$AIRFLOW_VERSION" >&2
}

start_airflow() {
  local port=$1 home=$2
  mkdir -p "$home/dags"
  cp tests/fixtures/airflow/*.py "$home/dags/"
  (
    export AIRFLOW_HOME="$home"
    export PATH="$AIRFLOW_VENV/bin:$PATH"
    export AIRFLOW__CORE__LOAD_EXAMPLES=False
    export AIRFLOW__CORE__DAGS_FOLDER="$home/dags"
    export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
    export AIRFLOW__API__HOST=127.0.0.1
    export AIRFLOW__API__PORT="$port"
    export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$port/execution/"
    export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
    # Its own session, with SIGINT restored (a background job of a script ignores it), so that
    # stop_airflow can stop the whole of it.
    exec setsid python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' airflow standalone
  ) >"$home/standalone.log" 2>&1 &
  AIRFLOW_PID=$!
  echo "$AIRFLOW_PID" >"$home/standalone.pid"
  export AIRFLOW_PID AIRFLOW_URL="http://127.0.0.1:$port" AIRFLOW_HOME_DIR="$home"
  local deadline=$((SECONDS + 180))
  until [ -s "$home/simple_auth_manager_passwords.json.generated" ] && \
        "$AIRFLOW_VENV/bin/python" - "$AIRFLOW_URL" "$home" <<'PY' 2>/dev/null
import json, sys, urllib.request
url, home = sys.argv[1], sys.argv[2]
password = json.load(open(home + "/simple_auth_manager_passwords.json.generated"))["admin"]
request = urllib.request.Request(url + "/auth/token", data=json.dumps({"username": "admin", "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
token = json.load(urllib.request.urlopen(request, timeout=5))["access_token"]
request = urllib.request.Request(url + "/api/v2/dags/driftgate_retrain", headers={"Authorization": "Bearer " + token})
assert json.load(urllib.request.urlopen(request, timeout=5))["dag_id"] == "driftgate_retrain"
PY
  do
    if ! kill -0 "$AIRFLOW_PID" 2>/dev/null; then
      echo "airflow standalone exited during start-up; its log:" >&2
      tail -50 "$home/standalone.log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "airflow did not serve the test DAG within 180 s; its log:" >&2
      tail -50 "$home/standalone.log" >&2
      return 1
    fi
    sleep 1
  done
}

stop_airflow() {
  # Started in a background subshell, its pid is only in the file.
  if [ -z "${AIRFLOW_PID:-}" ] && [ -s "${AIRFLOW_HOME_DIR:-/nonexistent}/standalone.pid" ]; then
    AIRFLOW_PID=$(cat "$AIRFLOW_HOME_DIR/standalone.pid")
  fi
  if [ -n "${AIRFLOW_PID:-}" ] && kill -0 "$AIRFLOW_PID" 2>/dev/null; then
    kill -INT "$AIRFLOW_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$AIRFLOW_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.5
    done
    kill -KILL -- "-$AIRFLOW_PID" 2>/dev/null || true
    wait "$AIRFLOW_PID" 2>/dev/null || true
  fi
  # Anything of its session that outlived the leader.
  if [ -n "${AIRFLOW_PID:-}" ]; then
    kill -KILL -- "-$AIRFLOW_PID" 2>/dev/null || true
  fi
}
