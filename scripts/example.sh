#!/usr/bin/env bash
# Install everything, then run the word-count example DAG end to end with `airflow dags test`
# on the local backend (the embedded default: local files, no servers) and print its top
# words. Usage: scripts/example.sh [INPUT] [DAG_ID]   INPUT: file, folder, glob or URI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"

INPUT="${1:-$ROOT/dags/data/wordcount}"
DAG_ID="${2:-wordcount}"
case "$INPUT" in *://*) ;; *) INPUT="file://$(realpath "$INPUT")" ;; esac
DEMO="${AIRFLOW_MAPREDUCE_DEMO_HOME:-$ROOT/.demo}"
OUTPUT="file://$DEMO/output/$DAG_ID/$(date -u +%Y%m%dT%H%M%S)"
export AIRFLOW_HOME="$DEMO/airflow" AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
mkdir -p "$AIRFLOW_HOME"
LOG="$DEMO/$DAG_ID.log"

echo "Preparing Airflow's metadata DB in $AIRFLOW_HOME ..."
airflow db migrate >"$DEMO/db-migrate.log" 2>&1
echo "Running DAG $DAG_ID: $INPUT -> $OUTPUT (log: $LOG)"
if ! airflow dags test "$DAG_ID" --conf "{\"input\": \"$INPUT\", \"output\": \"$OUTPUT\"}" >"$LOG" 2>&1 \
   || ! grep -q "state=success" "$LOG"; then
  tail -n 40 "$LOG"
  echo "DAG run failed; full log: $LOG" >&2
  exit 1
fi
grep -E "Planned|Committed" "$LOG" | sed -E 's/^.*\] (Planned|Committed)/\1/; s/ \[airflow.*$//'
python - "$OUTPUT" <<'PY'
import json, sys
from airflow_mapreduce.storage import FileSystems

files = FileSystems()
manifest = json.loads(files.read_bytes(sys.argv[1].rstrip("/") + "/_manifest.json"))
rows = [
    line.split("\t")
    for part in manifest["files"]
    for line in files.read_bytes(part["uri"]).decode().splitlines()
]
if not all(len(row) == 2 and row[1].isdigit() for row in rows):  # not a word count
    print(f"{manifest['records']} records in {len(manifest['files'])} part file(s). First ones:")
    for row in rows[:20]:
        print("  " + "  ".join(row))
    sys.exit(0)
counts = {word: int(count) for word, count in rows}
print(f"{manifest['records']} distinct words in {len(manifest['files'])} part file(s). Top words:")
for word, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]:
    print(f"{count:>10}  {word}")
PY
