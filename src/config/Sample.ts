/** Renders config.sample.yaml from the schema, so the sample's comments and defaults cannot drift. */
import yaml from "js-yaml";
import { configSchema } from "./Config.js";
import type { Fields } from "./Schema.js";

function renderScalar(value: unknown): string {
    return yaml.dump(value, { lineWidth: -1 }).trimEnd();
}

function renderFields(fields: Fields, indent: string, out: string[]): void {
    for (const [index, [key, spec]] of Object.entries(fields).entries()) {
        if (index > 0 || indent === "") out.push("");
        for (const line of spec.doc.split("\n")) {
            out.push(`${indent}# ${line}`);
        }
        if (spec.kind === "section") {
            out.push(`${indent}${key}:`);
            renderFields(spec.fields as Fields, indent + "  ", out);
        } else {
            out.push(
                `${indent}# ${spec.default === undefined ? "Required." : `Default: ${renderScalar(spec.default)}`}`,
            );
            const sample = spec.sample;
            if (typeof sample === "object" && sample !== null && Object.keys(sample).length > 0) {
                // A list or mapping: a YAML block under the key, inner lists in flow style.
                const block = yaml.dump(sample, { lineWidth: -1, flowLevel: 2 }).trimEnd().split("\n");
                out.push(`${indent}${key}:`, ...block.map((line) => `${indent}  ${line}`));
            } else {
                out.push(`${indent}${key}: ${renderScalar(sample)}`);
            }
        }
    }
}

export function renderConfigSample(): string {
    const out = [
        "# Sample configuration for matrix-account-data-audit.",
        "# Generated from src/config/Config.ts by `npm run config:sample`; do not edit by hand.",
    ];
    renderFields(configSchema.fields, "", out);
    return out.join("\n").replace(/\n\n+/g, "\n\n") + "\n";
}
