#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=20 --optimize-for-size
/**
 * The process: command line, files, signals. The app itself is built by `start()` in App.ts; the commands and
 * their options are one table (cli/Commands.ts), which `--help` prints whole.
 *
 *   matrix-account-data-audit -r -u http://localhost:9993 [-l localpart] [-f registration.yaml] [--alias #a:server]
 *   matrix-account-data-audit -c config.yaml [-f registration.yaml] [-p port]
 *   matrix-account-data-audit validate-config -c config.yaml [-f registration.yaml] [--strict]
 *   matrix-account-data-audit verify -c config.yaml -f registration.yaml [--from SEQ] [--json]
 *   matrix-account-data-audit create-room -c config.yaml -f registration.yaml [--invite USER]... [--alias ALIAS]
 *   matrix-account-data-audit invite -c config.yaml -f registration.yaml USER_ID...
 */
import "./quietDependencies.js";
import { readFile } from "node:fs/promises";
import yaml from "js-yaml";
import { AppServiceRegistration, Logger } from "matrix-appservice-bridge";
import { start } from "./App.js";
import { commandSpec, COMMANDS, describeError, helpText, MIN_NODE_MAJOR, parseArgs } from "./cli/Commands.js";
import { runValidateConfig } from "./cli/ValidateConfig.js";
import { parseConfig } from "./config/Config.js";
import { ConfigError, InvalidConfigError, StartupError } from "./Errors.js";
import { isRoomAlias } from "./matrix/Identifiers.js";
import { completeRegistration } from "./Registration.js";
import { runCreateRoom, runInvite } from "./verify/CreateRoomCommand.js";
import { runVerify } from "./verify/VerifyCommand.js";

const log = new Logger("main");

function fail(err: unknown): never {
    if (err instanceof InvalidConfigError) {
        for (const problem of err.problems) process.stderr.write(`Config error: ${problem.message}\n`);
        warnUnknownKeys(err.unknownKeys);
    } else if (err instanceof ConfigError) {
        process.stderr.write(`Config error: ${err.message}\n`);
    } else if (err instanceof StartupError) {
        process.stderr.write(`Cannot start: ${err.message}\n`);
    } else {
        // A bug shows its stack; anything else (a library's error object) only what it says.
        process.stderr.write(`Fatal: ${err instanceof Error ? (err.stack ?? err.message) : describeError(err)}\n`);
    }
    process.exit(1);
}

function warnUnknownKeys(unknownKeys: readonly string[]): void {
    for (const key of unknownKeys) {
        process.stderr.write(`Warning: unknown config key '${key}' is ignored\n`);
    }
}

async function run(port: number | null, rawConfig: unknown, registration: AppServiceRegistration): Promise<void> {
    const { config, unknownKeys } = parseConfig(rawConfig);
    warnUnknownKeys(unknownKeys);
    const effective = port === null ? config : { ...config, listen: { ...config.listen, port } };
    const app = await start(effective, registration);
    let stopping = false;
    const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info(`Got ${signal}, stopping`);
        app.stop().then(
            () => process.exit(0),
            (err: unknown) => fail(err),
        );
    };
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
}

async function readYaml(path: string, what: string): Promise<unknown> {
    try {
        return yaml.load(await readFile(path, "utf8"), { filename: path });
    } catch (err) {
        throw new ConfigError("", `Cannot read the ${what} ${path}: ${describeError(err)}`);
    }
}

/** `-c config.yaml [-f registration.yaml] [-p port]`: runs the appservice. */
async function runAppservice(argv: string[]): Promise<void> {
    const spec = commandSpec("");
    const args = parseArgs(spec, argv);
    const port = typeof args === "string" ? undefined : args.values.port;
    if (typeof args === "string" || !args.values.config || (port !== undefined && !/^\d+$/.test(port))) {
        process.stderr.write(`${typeof args === "string" ? args : "Give the config with -c"}\n${helpText()}`);
        process.exit(2);
    }
    const registrationPath = args.values.file ?? "registration.yaml";
    const registration = await readYaml(registrationPath, "registration");
    if (typeof registration !== "object" || registration === null) {
        throw new ConfigError("", `The registration ${registrationPath} is not a YAML mapping`);
    }
    const rawConfig = await readYaml(args.values.config, "config file");
    await run(
        port === undefined ? null : Number(port),
        rawConfig,
        AppServiceRegistration.fromObject(registration as Parameters<typeof AppServiceRegistration.fromObject>[0]),
    );
}

/** `-r -u URL [-l localpart] [-f file] [--alias #a:server]...`: writes a new registration. */
function writeRegistration(argv: string[]): number {
    const spec = commandSpec("-r");
    const args = parseArgs(spec, argv);
    const aliases = typeof args === "string" ? [] : (args.lists.alias ?? []);
    const problem =
        typeof args === "string"
            ? args
            : !args.values.url
              ? "Give the URL the homeserver reaches the appservice at with -u"
              : aliases.find((a) => !isRoomAlias(a))?.concat(" is not a room alias (#name:server)");
    if (problem || typeof args === "string") {
        process.stderr.write(`${problem}\n${helpText(spec)}`);
        return 2;
    }
    const path = args.values.file ?? "registration.yaml";
    const registration = completeRegistration(
        new AppServiceRegistration(args.values.url as string),
        args.values.localpart,
        aliases,
    );
    registration.outputAsYaml(path);
    process.stderr.write(
        `Wrote ${path}: add it to app_service_config_files in homeserver.yaml and restart the homeserver.\n`,
    );
    return 0;
}

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
    "validate-config": (argv) => runValidateConfig(argv),
    verify: runVerify,
    "create-room": runCreateRoom,
    invite: runInvite,
};

function main(argv: string[]): void {
    const major = Number(process.versions.node.split(".")[0]);
    if (major < MIN_NODE_MAJOR) {
        process.stderr.write(
            `Warning: Node.js ${process.versions.node} is older than ${MIN_NODE_MAJOR}, which the bridge library ` +
                `and the bot SDK require; use Node.js ${MIN_NODE_MAJOR} or newer.\n`,
        );
    }
    const [first = "", ...rest] = argv;
    const named = COMMANDS.find((c) => c.name !== "" && c.name === first);
    if (argv.includes("-h") || argv.includes("--help")) {
        // `COMMAND --help` shows that command; a bare `--help` (or `-r --help`) shows them all.
        process.stdout.write(named && named.name !== "-r" ? helpText(named) : helpText());
        process.exit(0);
    }
    if (argv.includes("-r") || argv.includes("--generate-registration")) {
        process.exit(writeRegistration(argv.filter((a) => a !== "-r" && a !== "--generate-registration")));
    }
    const command = SUBCOMMANDS[first];
    if (command) {
        command(rest).then(
            (code) => process.exit(code),
            (err: unknown) => {
                process.stderr.write(`${first}: ${describeError(err)}\n`);
                process.exit(2);
            },
        );
        return;
    }
    if (argv.length === 0) {
        process.stdout.write(helpText());
        process.exit(2);
    }
    runAppservice(argv).catch(fail);
}

main(process.argv.slice(2));
