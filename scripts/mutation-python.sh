#!/usr/bin/env bash
# mutmut on the host module's trail core (configured in synapse-module/setup.cfg), judged by its pytest suite.
# mutmut is installed from PyPI (wheels only) into the project's Synapse virtualenv (.venv, or AUDIT_VENV),
# next to the Synapse the tests import. It works in synapse-module/mutants/ (gitignored); a rerun retests only
# mutants whose function changed. MUTMUT_CHILDREN sets its parallelism (default 2).
#
#   bash scripts/mutation-python.sh                 run, then print the score per file
#   bash scripts/mutation-python.sh results         the score per file of the last run only
set -euo pipefail
cd "$(dirname "$0")/.."
MUTMUT_VERSION="3.8.1"
VENV="${AUDIT_VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$(pwd)/$VENV" ;; esac

if [ "${1:-run}" = run ]; then
    bash scripts/setup-synapse-venv.sh
    if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mutmut"))' 2>/dev/null)" != "$MUTMUT_VERSION" ]; then
        "$VENV/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: "mutmut==$MUTMUT_VERSION"
    fi
    start=$(date +%s)
    (cd synapse-module && "$VENV/bin/mutmut" run --max-children "${MUTMUT_CHILDREN:-2}" > ../reports/mutmut-run.log 2>&1) || {
        tail -c 2000 reports/mutmut-run.log
        exit 1
    }
    echo "== mutmut took $(($(date +%s) - start)) s (log: reports/mutmut-run.log)"
fi

echo "== mutmut scores per file (killed + timed out) / (all checked but skipped; no tests counts as survived):"
(cd synapse-module && "$VENV/bin/mutmut" results --all true) | awk -F': ' '
    /__mutmut_[0-9]+: / {
        name = $1; sub(/^ +/, "", name); sub(/\.[^.]*$/, "", name); status = $2
        if (status == "skipped" || status == "not checked") next
        total[name]++
        if (status == "killed" || status == "timeout") killed[name]++
        else survived[name]++
    }
    END {
        for (f in total) printf "%-44s %5.1f %%  (%d survived, of %d)\n", f, 100 * killed[f] / total[f], survived[f], total[f]
    }' | sort
