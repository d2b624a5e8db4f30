#!/usr/bin/env bash
# Install everything, then lint, type-check and run the whole test suite (slow tests too).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
ruff check airflow_mapreduce tests dags bench
mypy
pytest -p no:cacheprovider "$@"
