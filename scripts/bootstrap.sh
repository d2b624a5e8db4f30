#!/usr/bin/env bash
# Installs everything from the committed lock file into .venv (Python 3.11 + git is all a
# fresh machine needs). Sourced by the other scripts; safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.8"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ ! -x "$ROOT/.tools/bin/uv" ]; then
  "$PYTHON" -m venv "$ROOT/.tools"
  "$ROOT/.tools/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
export UV_PYTHON_DOWNLOADS=never
"$ROOT/.tools/bin/uv" sync --quiet --frozen --all-extras --python "$PYTHON" --project "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
