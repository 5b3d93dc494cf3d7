#!/usr/bin/env bash
# Creates (or reuses) a Python virtualenv with Synapse from PyPI, our host module installed from
# synapse-module/, and the Python dev tools. Idempotent; re-installs when the pins change.
#
#   AUDIT_VENV       the virtualenv's directory (default .venv)
#   SYNAPSE_VERSION  the Synapse to install: a version, `newest` (the default: SYNAPSE_NEWEST below) or
#                    `oldest` (SYNAPSE_OLDEST, the oldest the host module supports, see README "Install
#                    (admins)"; `npm run test:e2e:oldest` builds .venv-oldest with it).
#
# Wheels only (--only-binary): psycopg2-binary instead of Synapse's `postgres` extra (which builds psycopg2
# from source and needs gcc and libpq headers), and the `redis` extra for Synapse workers (hiredis ships
# wheels). Production installs should follow Synapse's own docs (the `postgres` extra, built against the
# system's libpq); psycopg2-binary is what its maintainers recommend for development and testing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The two ends of the supported range; keep them in step with synapse-module/pyproject.toml (`dev` pins the
# newest, `dependencies` states the oldest) and with compat.py's MIN_SYNAPSE / NEWEST_TESTED.
SYNAPSE_NEWEST="1.163.2"
SYNAPSE_OLDEST="1.141.0"
# Synapse leaves most of its dependencies unbounded, and today's releases can break an old Synapse:
# prometheus_client 0.24 (2026-01) breaks 1.141.0 at import (its InFlightGauge cannot build its MRO). Admins on
# an old Synapse run the dependencies of its day (its Docker image and Debian package lock them), so the oldest
# gets these caps, found by running the smoke test against it. (pip's --uploaded-prior-to would be more
# general, but it cannot see upload dates on mirrors and file indexes.)
SYNAPSE_OLDEST_CAPS=("prometheus-client<0.24")
case "${SYNAPSE_VERSION:-newest}" in
  newest) SYNAPSE_VERSION="$SYNAPSE_NEWEST" ;;
  oldest) SYNAPSE_VERSION="$SYNAPSE_OLDEST" ;;
esac
REQUIREMENTS=("matrix-synapse[redis]==$SYNAPSE_VERSION" "psycopg2-binary>=2.9")
if [ "$SYNAPSE_VERSION" = "$SYNAPSE_OLDEST" ]; then
    REQUIREMENTS+=("${SYNAPSE_OLDEST_CAPS[@]}")
fi
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
# The host module is ours, built from source (pure Python, no compiler involved), with the test tools but
# not the `dev` extra: that one pins the newest Synapse, which would replace SYNAPSE_VERSION here.
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e "synapse-module[test]"
# Catches a pin that pip quietly resolved to something else (e.g. a requirement of the module's), and a
# dependency release that breaks this Synapse at import (see SYNAPSE_OLDEST_CAPS), here rather than in a test.
"$VENV/bin/python" - "$SYNAPSE_VERSION" <<'PY'
import importlib.metadata
import sys

import synapse.app.homeserver  # noqa: F401

found = importlib.metadata.version("matrix-synapse")
if found != sys.argv[1]:
    sys.exit(f"{sys.prefix} holds Synapse {found}, not {sys.argv[1]}")
PY
rm -f "$VENV"/.installed-*
touch "$STAMP"
