#!/usr/bin/env bash
# The host module's checks: ruff, mypy --strict and the pytest unit tests.
set -euo pipefail
cd "$(dirname "$0")/../synapse-module"
VENV="${AUDIT_VENV:-../.venv}"
case "$VENV" in /*) ;; *) VENV="$(cd .. && pwd)/${AUDIT_VENV:-.venv}" ;; esac
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"
"$VENV/bin/pytest" -q -p no:cacheprovider tests
