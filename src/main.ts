#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=50
/**
 * The process: command line, files, signals. The app itself is built by `start()` in App.ts.
 *
 *   matrix-account-data-audit -r -u http://localhost:9993 [-l localpart] [-f registration.yaml]
 *   matrix-account-data-audit -c config.yaml [-f registration.yaml] [-p port]
 *   matrix-account-data-audit validate-config config.yaml   (every problem, then unknown keys; exit 1 on errors)
 *   matrix-account-data-audit verify -c config.yaml -f registration.yaml [--from SEQ] [--json]
 *   matrix-account-data-audit create-room -c config.yaml -f registration.yaml [--invite USER]... [--alias ALIAS]
 */
import "./quietDependencies.js";
import { AppServiceRegistration, Cli, Logger } from "matrix-appservice-bridge";
import { start } from "./App.js";
import { parseConfig } from "./config/Config.js";
import { loadConfigFile } from "./config/loadConfig.js";
import { ConfigError, InvalidConfigError, StartupError } from "./Errors.js";
import { completeRegistration } from "./Registration.js";
import { runCreateRoom } from "./verify/CreateRoomCommand.js";
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
        process.stderr.write(`Fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exit(1);
}

function warnUnknownKeys(unknownKeys: readonly string[]): void {
    for (const key of unknownKeys) {
        process.stderr.write(`Warning: unknown config key '${key}' is ignored\n`);
    }
}

async function validateConfig(path: string | undefined): Promise<void> {
    if (!path) {
        process.stderr.write("Usage: matrix-account-data-audit validate-config CONFIG_FILE\n");
        process.exit(2);
    }
    const { unknownKeys } = await loadConfigFile(path);
    warnUnknownKeys(unknownKeys);
    process.stdout.write(`${path} is valid.\n`);
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

function main(argv: string[]): void {
    if (argv[0] === "validate-config") {
        validateConfig(argv[1]).catch(fail);
        return;
    }
    const command = argv[0] === "verify" ? runVerify : argv[0] === "create-room" ? runCreateRoom : null;
    if (command) {
        command(argv.slice(1)).then(
            (code) => process.exit(code),
            () => process.exit(2),
        );
        return;
    }
    const cli = new Cli<Record<string, unknown>>({
        registrationPath: "registration.yaml",
        enableRegistration: true,
        enableLocalpart: true,
        // No schema here: our own parser validates the config with errors that name the key.
        bridgeConfig: { affectsRegistration: false, schema: {}, defaults: {} },
        generateRegistration: (reg, callback) => callback(completeRegistration(reg)),
        run: (port, config, registration) => {
            if (!registration) fail(new ConfigError("registration", "No registration file loaded"));
            run(port, config, registration).catch(fail);
        },
    });
    try {
        cli.run();
    } catch (err) {
        fail(err);
    }
}

main(process.argv.slice(2));
