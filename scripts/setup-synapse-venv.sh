#!/usr/bin/env bash
# Creates (or reuses) the project's Python virtualenv: the pinned Synapse from PyPI, our host module
# installed from synapse-module/, and the Python dev tools. Idempotent; re-installs when the pins change.
set -euo pipefail
cd "$(dirname "$0")/.."

SYNAPSE_VERSION="1.163.2"
VENV="${AUDIT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed-$SYNAPSE_VERSION-$(cat synapse-module/pyproject.toml | sha1sum | cut -c1-12)"

if [ -f "$STAMP" ]; then
    exit 0
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "Synapse needs Python >= 3.10; $PYTHON is $("$PYTHON" --version)" >&2
    exit 1
fi
echo "Setting up $VENV with matrix-synapse $SYNAPSE_VERSION (first run downloads about 60 MB from PyPI)..." >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "matrix-synapse[postgres]==$SYNAPSE_VERSION" -e "synapse-module[dev]"
rm -f "$VENV"/.installed-*
touch "$STAMP"
