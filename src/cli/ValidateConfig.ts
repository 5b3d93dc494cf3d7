/**
 * `validate-config -c config.yaml [-f registration.yaml] [--strict]`: every problem of the config at once, then
 * (with -f) whether it fits the registration, then the unknown keys as warnings. Exit 0: valid (the last line
 * says how many warnings); 1: errors, or warnings with --strict; 2: usage. The old positional form
 * (`validate-config config.yaml`) still works, with a note, so existing scripts keep running.
 */
import { readFile } from "node:fs/promises";
import yaml from "js-yaml";
import { loadConfigFile } from "../config/loadConfig.js";
import { InvalidConfigError } from "../Errors.js";
import { commandSpec, describeError, helpText, parseArgs } from "./Commands.js";
import { type RegistrationFile, registrationProblems } from "./RegistrationChecks.js";

export interface Output {
    out: (text: string) => void;
    err: (text: string) => void;
}

const stdio: Output = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export async function runValidateConfig(argv: string[], io: Output = stdio): Promise<number> {
    const spec = commandSpec("validate-config");
    const args = parseArgs({ ...spec, positional: "CONFIG_FILE" }, argv);
    if (typeof args === "string" || args.positional.length > 1) {
        io.err(`${typeof args === "string" ? args : "Give one config file"}\n${helpText(spec)}`);
        return 2;
    }
    const [positional] = args.positional;
    if (positional !== undefined) {
        io.err(`Note: 'validate-config FILE' is deprecated; use 'validate-config -c FILE' like the other commands.\n`);
    }
    const configPath = args.values.config ?? positional;
    if (configPath === undefined || (positional !== undefined && args.values.config !== undefined)) {
        io.err(`Give the config with -c (once)\n${helpText(spec)}`);
        return 2;
    }
    const errors: string[] = [];
    const warnings: string[] = [];
    let config: Awaited<ReturnType<typeof loadConfigFile>>["config"] | null = null;
    try {
        const parsed = await loadConfigFile(configPath);
        config = parsed.config;
        warnings.push(...parsed.unknownKeys.map((k) => `unknown config key '${k}' is ignored`));
    } catch (err) {
        if (err instanceof InvalidConfigError) {
            errors.push(...err.problems.map((p) => p.message));
            warnings.push(...err.unknownKeys.map((k) => `unknown config key '${k}' is ignored`));
        } else {
            errors.push(describeError(err));
        }
    }
    const registrationPath = args.values.file;
    if (registrationPath !== undefined && config) {
        try {
            const registration = yaml.load(await readFile(registrationPath, "utf8")) as RegistrationFile;
            errors.push(...registrationProblems(config, registration, registrationPath));
        } catch (err) {
            errors.push(`Cannot read the registration ${registrationPath}: ${describeError(err)}`);
        }
    } else if (registrationPath === undefined) {
        io.err("Note: the config was not checked against the registration (give it with -f).\n");
    }
    for (const error of errors) io.err(`Config error: ${error}\n`);
    for (const warning of warnings) io.err(`Warning: ${warning}\n`);
    if (errors.length > 0) {
        io.err(`${configPath} is NOT valid: ${errors.length} error(s), ${warnings.length} warning(s).\n`);
        return 1;
    }
    const strictFails = args.switches.has("strict") && warnings.length > 0;
    io.out(
        warnings.length === 0
            ? `${configPath} is valid.\n`
            : `${configPath} is valid, with ${warnings.length} warning(s)${strictFails ? " (--strict: failing)" : ""}.\n`,
    );
    return strictFails ? 1 : 0;
}
