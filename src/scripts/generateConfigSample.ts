/**
 * Prints config.sample.yaml; with `--check FILE`, exits 1 if FILE differs from what the schema generates
 * (CI runs this so the sample never drifts from the code).
 */
import { readFileSync } from "node:fs";
import { renderConfigSample } from "../config/Sample.js";

const sample = renderConfigSample();
const checkIndex = process.argv.indexOf("--check");
if (checkIndex === -1) {
    process.stdout.write(sample);
} else {
    const file = process.argv[checkIndex + 1] ?? "config.sample.yaml";
    if (readFileSync(file, "utf8") !== sample) {
        process.stderr.write(`${file} is out of date: run \`npm run config:sample\` and commit the result.\n`);
        process.exit(1);
    }
    process.stdout.write(`${file} matches the config schema.\n`);
}
