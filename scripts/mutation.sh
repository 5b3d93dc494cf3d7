#!/usr/bin/env bash
# npm run mutation (issue #25): mutation testing of the trail's core. Not part of CI's default run (.ci/run);
# docs/mutation.md has the last figures, the equivalent mutants and how long a run takes.
#   1. Stryker (stryker.config.json) on src/verify, src/modules/audit and src/ingest, judged by the unit tests
#      only (vitest.stryker.config.ts has no e2e project); incremental: reports/stryker-incremental.json
#      (gitignored) lets a rerun test only the mutants whose code or tests changed.
#   2. mutmut (scripts/mutation-python.sh) on the host module's chain, claims, recovery, outbox and digest mode.
# Reports go to reports/ (gitignored): mutation/mutation.html, the scores per folder and per file on stdout.
#
#   bash scripts/mutation.sh [ts|python]    one half only (default: both)
#   MUTATE="src/verify/**/*.ts" bash scripts/mutation.sh ts    one folder (or file) while iterating
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
mkdir -p reports

if [ "$what" = all ] || [ "$what" = ts ]; then
    start=$(date +%s)
    node_modules/.bin/stryker run ${MUTATE:+--mutate "$MUTATE"}
    echo "== Stryker took $(($(date +%s) - start)) s; scores per folder (killed + timed out) / (all but compile errors and ignored):"
    node_modules/.bin/node - reports/mutation/mutation.json <<'JS'
const report = JSON.parse(require("node:fs").readFileSync(process.argv[2], "utf8"));
const rows = new Map();
for (const [file, { mutants }] of Object.entries(report.files)) {
    for (const key of [file.split("/").slice(0, -1).join("/"), file]) {
        const row = rows.get(key) ?? { killed: 0, survived: 0, noCoverage: 0, timeout: 0 };
        for (const { status } of mutants) {
            if (status === "Killed") row.killed++;
            else if (status === "Timeout") row.timeout++;
            else if (status === "Survived") row.survived++;
            else if (status === "NoCoverage") row.noCoverage++;
        }
        rows.set(key, row);
    }
}
for (const [key, r] of [...rows].sort(([a], [b]) => a.localeCompare(b))) {
    const valid = r.killed + r.timeout + r.survived + r.noCoverage;
    const score = valid === 0 ? 100 : ((r.killed + r.timeout) / valid) * 100;
    console.log(`${key.padEnd(42)} ${score.toFixed(1).padStart(5)} %  (${r.survived} survived, ${r.noCoverage} not covered, of ${valid})`);
}
JS
fi

if [ "$what" = all ] || [ "$what" = python ]; then
    bash scripts/mutation-python.sh
fi
