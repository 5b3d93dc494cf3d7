#!/usr/bin/env bash
# Creates (or reuses) the project's Python virtualenv: the pinned Synapse from PyPI, our host module
# installed from synapse-module/, and the Python dev tools. Idempotent; re-installs when the pins change.
#
# Wheels only (--only-binary): psycopg2-binary instead of Synapse's `postgres` extra (which builds psycopg2
# from source and needs gcc and libpq headers), and the `redis` extra for Synapse workers (hiredis ships
# wheels). Production installs should follow Synapse's own docs (the `postgres` extra, built against the
# system's libpq); psycopg2-binary is what its maintainers recommend for development and testing.
set -euo pipefail
cd "$(dirname "$0")/.."

SYNAPSE_VERSION="1.163.2"
REQUIREMENTS=("matrix-synapse[redis]==$SYNAPSE_VERSION" "psycopg2-binary>=2.9")
VENV="${AUDIT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
PINS="$SYNAPSE_VERSION ${REQUIREMENTS[*]} $(sha1sum < synapse-module/pyproject.toml)"
STAMP="$VENV/.installed-$(echo "$PINS" | sha1sum | cut -c1-12)"

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
"$VENV/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: "${REQUIREMENTS[@]}"
# The host module is ours, built from source (pure Python, no compiler involved).
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e "synapse-module[dev]"
rm -f "$VENV"/.installed-*
touch "$STAMP"
