#!/usr/bin/env bash
# Install everything, then run a local Airflow with its UI (`airflow standalone`: SQLite,
# LocalExecutor) over the project's dags/ folder on 127.0.0.1, until Ctrl-C.
# Usage: scripts/airflow.sh [--port N] [--foreground-logs]    (or PORT=N; default 8080)
# Airflow home: $AIRFLOW_MAPREDUCE_HOME, default .airflow/ (ignored by git).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PORT="${PORT:-8080}"
FOREGROUND_LOGS=false
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="${2:?--port needs a number}"; shift 2 ;;
    --port=*) PORT="${1#--port=}"; shift ;;
    --foreground-logs) FOREGROUND_LOGS=true; shift ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (expected --port N or --foreground-logs)" >&2; exit 2 ;;
  esac
done
case "$PORT" in ''|*[!0-9]*) echo "port must be a number, got '$PORT'" >&2; exit 2 ;; esac
if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then echo "port must be 1-65535, got $PORT" >&2; exit 2; fi

# Taken if something answers on it or it cannot be bound (SO_REUSEADDR: a port left in
# TIME_WAIT by the last run is free).
port_taken() {
  python3 - "$1" <<'PY'
import socket, sys
port = int(sys.argv[1])
with socket.socket() as probe:
    probe.settimeout(1)
    if probe.connect_ex(("127.0.0.1", port)) == 0:
        sys.exit(0)
with socket.socket() as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        sys.exit(0)
sys.exit(1)
PY
}
# The first free port from $1 up that is none of the other arguments.
free_port_from() {
  local port="$1"; shift
  while [[ " $* " == *" $port "* ]] || port_taken "$port"; do port=$((port + 1)); done
  echo "$port"
}

if port_taken "$PORT"; then
  other="$(free_port_from $((PORT + 1)))"
  echo "Port $PORT on 127.0.0.1 is already in use (another Airflow?). Pick another one, e.g." >&2
  echo "  PORT=$other bash scripts/airflow.sh    or    bash scripts/airflow.sh --port $other" >&2
  exit 1
fi  # checked before installing: the answer comes at once

source "$ROOT/scripts/bootstrap.sh"

export AIRFLOW_HOME="${AIRFLOW_MAPREDUCE_HOME:-$ROOT/.airflow}"
mkdir -p "$AIRFLOW_HOME"
URL="http://127.0.0.1:$PORT"
LOG="$AIRFLOW_HOME/standalone.log"
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags" AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT="$PORT" AIRFLOW__API__BASE_URL="$URL"
# Off 8080 the tasks must be told where the API server is, or each dies with "Connection refused".
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="$URL/execution/"
# LocalExecutor pre-starts one worker process per parallelism slot.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
# Look for new job files in dags/ every 5 s (default 5 min).
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-5}"
# One user, admin; standalone generates its password once per Airflow home into $PASSWORDS.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$PASSWORDS"
# The scheduler's and the triggerer's log servers (default 8793, 8794) must miss the API
# port and each other: whichever binds second fails, and standalone still says "ready".
WORKER_LOG_PORT="$(free_port_from 8793 "$PORT")"
TRIGGER_LOG_PORT="$(free_port_from 8794 "$PORT" "$WORKER_LOG_PORT")"
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="$WORKER_LOG_PORT"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="$TRIGGER_LOG_PORT"

PID="" TAIL=""
# Standalone's process group and every descendant of it: task processes and the local
# backend's workers run in a process group or session of their own.
family() {
  ps -e -o pid=,ppid=,pgid= | awk -v g="$PID" '{kids[$2] = kids[$2] " " $1} $3 == g {todo = todo " " $1}
    END {while (split(todo, now, " ")) {todo = ""; for (i in now) {p = now[i]; if (!(p in seen)) {seen[p] = 1; print p; todo = todo kids[p]}}}}'
}
# Those of the given pids that still run (a zombie has exited, it waits for its parent).
alive() { [ $# -gt 0 ] && ps -o pid=,stat= -p "$(IFS=,; echo "$*")" | awk '$2 !~ /^Z/ {print $1}'; }
stop() {
  local code=$? pids left
  trap - EXIT
  trap '' INT TERM HUP  # a second Ctrl-C must not cut the (bounded) shutdown short
  [ -n "$TAIL" ] && { kill "$TAIL" 2>/dev/null || true; }
  pids="$([ -n "$PID" ] && family || true)"
  # shellcheck disable=SC2086  # word splitting wanted: a list of pids
  if [ -n "$(alive $pids || true)" ]; then
    echo "Stopping Airflow (api-server, scheduler, dag-processor, triggerer, workers) ..."
    kill -TERM -- "-$PID" 2>/dev/null || true
    for _ in $(seq 60); do [ -n "$(alive $pids || true)" ] || break; sleep 0.5; done
    left="$(alive $pids || true)"
    if [ -n "$left" ]; then
      echo "Still running after 30 s, killing:" $left >&2
      kill -KILL $left 2>/dev/null || true
    fi
    echo "Airflow stopped."
  fi
  [ -n "$PID" ] && { wait "$PID" 2>/dev/null || true; }
  exit "$code"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

echo "Starting Airflow in $AIRFLOW_HOME (log: $LOG) ..."
# Job control gives standalone a process group of its own (pgid = $PID) to signal on the
# way out, and keeps SIGINT un-ignored in it (a background job of a script ignores SIGINT).
set -m
airflow standalone </dev/null >"$LOG" 2>&1 &
PID=$!
set +m
if $FOREGROUND_LOGS; then tail -n +1 -f "$LOG" & TAIL=$!; fi

healthy() {
  python3 - "$URL/api/v2/monitor/health" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5)
except (OSError, KeyboardInterrupt):  # Ctrl-C: the script's trap stops Airflow
    sys.exit(1)
PY
}
deadline=$((SECONDS + 300))
until healthy; do
  problem=""
  kill -0 "$PID" 2>/dev/null || problem="airflow standalone exited during start-up"
  [ "$SECONDS" -lt "$deadline" ] || problem="no answer from $URL/api/v2/monitor/health in 300 s"
  if [ -n "$problem" ]; then
    tail -n 40 "$LOG"
    echo "Airflow did not start: $problem. Full log: $LOG" >&2
    exit 1
  fi
  sleep 1
done
PASSWORD="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$PASSWORDS")"

cat <<EOF

  Airflow is up:  $URL
  user:           admin
  password:       $PASSWORD   (kept in $PASSWORDS; delete it for a new one)
  DAGs from:      $AIRFLOW__CORE__DAGS_FOLDER (a new job file shows up within seconds)
  logs:           $LOG, task logs under $AIRFLOW_HOME/logs/
  stop:           Ctrl-C

EOF
code=0
wait "$PID" || code=$?
tail -n 40 "$LOG"
echo "airflow standalone exited by itself ($code); full log: $LOG" >&2
exit 1
