#!/usr/bin/env bash
# Helpers for real Airflows (from PyPI, in virtualenvs, SQLite, 127.0.0.1) used by the Airflow
# executor tests: Airflow 3 (API v2) and Airflow 2 (API v1). Source this file (after broker.sh,
# for free_port), then:
#   ensure_airflow VERSION      create the virtualenv with apache-airflow==VERSION unless it
#                               exists (~1 minute, once per machine per version; under
#                               ~/.cache/driftgate/airflow-VERSION)
#   start_airflow VERSION PORT HOME
#                               `airflow standalone` on 127.0.0.1:PORT with AIRFLOW_HOME=HOME and
#                               the test DAG; waits until the API answers and the DAG is parsed
#   stop_airflow HOME           SIGINT to its session (standalone stops its children on it),
#                               then SIGKILL whatever is left
AIRFLOW3_VERSION=3.3.2
AIRFLOW2_VERSION=2.10.5

airflow_venv() {
  echo "${AIRFLOW_VENV_ROOT:-$HOME/.cache/driftgate}/airflow-$1"
}

ensure_airflow() {
  local version=$1 venv
  venv=$(airflow_venv "$version")
  if [ -x "$venv/bin/airflow" ]; then
    return 0
  fi
  echo "installing apache-airflow $version into $venv (once: ~1 minute)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "apache-airflow==$version" >&2
}

start_airflow() {
  local version=$1 port=$2 home=$3 venv
  venv=$(airflow_venv "$version")
  mkdir -p "$home/dags"
  cp tests/fixtures/airflow/*.py "$home/dags/"
  (
    export AIRFLOW_HOME="$home"
    export PATH="$venv/bin:$PATH"
    export AIRFLOW__CORE__LOAD_EXAMPLES=False
    export AIRFLOW__CORE__DAGS_FOLDER="$home/dags"
    export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
    case "$version" in
      2.*)
        export AIRFLOW__WEBSERVER__WEB_SERVER_HOST=127.0.0.1
        export AIRFLOW__WEBSERVER__WEB_SERVER_PORT="$port"
        export AIRFLOW__API__AUTH_BACKENDS=airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session
        export AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL=5
        ;;
      *)
        export AIRFLOW__API__HOST=127.0.0.1
        export AIRFLOW__API__PORT="$port"
        export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$port/execution/"
        export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
        ;;
    esac
    # Its own session, with SIGINT restored (a background job of a script ignores it), so that
    # stop_airflow can stop the whole of it.
    exec setsid python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' airflow standalone
  ) >"$home/standalone.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$home/standalone.pid"
  local url="http://127.0.0.1:$port"
  local deadline=$((SECONDS + 180))
  until "$venv/bin/python" - "$url" "$home" "$version" <<'PY' 2>/dev/null
import base64, json, sys, urllib.request
url, home, version = sys.argv[1:4]
if version.startswith("2."):
    password = open(home + "/standalone_admin_password.txt").read().strip()
    auth = "Basic " + base64.b64encode(("admin:" + password).encode()).decode()
    path = "/api/v1/dags/driftgate_retrain"
else:
    password = json.load(open(home + "/simple_auth_manager_passwords.json.generated"))["admin"]
    request = urllib.request.Request(url + "/auth/token", data=json.dumps({"username": "admin", "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
    auth = "Bearer " + json.load(urllib.request.urlopen(request, timeout=5))["access_token"]
    path = "/api/v2/dags/driftgate_retrain"
request = urllib.request.Request(url + path, headers={"Authorization": auth})
assert json.load(urllib.request.urlopen(request, timeout=5))["dag_id"] == "driftgate_retrain"
PY
  do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "airflow $version standalone exited during start-up; its log:" >&2
      tail -50 "$home/standalone.log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "airflow $version did not serve the test DAG within 180 s; its log:" >&2
      tail -50 "$home/standalone.log" >&2
      return 1
    fi
    sleep 1
  done
}

stop_airflow() {
  local home=$1 pid
  # Started in a background subshell, its pid is only in the file.
  [ -s "$home/standalone.pid" ] || return 0
  pid=$(cat "$home/standalone.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.5
    done
  fi
  # Anything of its session that outlived the leader.
  kill -KILL -- "-$pid" 2>/dev/null || true
}
