/**
 * A throwaway Synapse on loopback, from the project's virtualenv (scripts/setup-synapse-venv.sh), for the
 * e2e tests, the demo and the benchmark. SQLite by default; PostgreSQL on 127.0.0.1:5432 with a fresh
 * database when asked.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import yaml from "js-yaml";
import postgres from "postgres";
import { type PortReservation, reservePort, saysAddressInUse } from "./net.js";
import { SynapseProcess } from "./SynapseProcess.js";

const execFileAsync = promisify(execFile);

export const PROJECT_ROOT = resolve(import.meta.dirname, "..", "..");
export const VENV = resolve(PROJECT_ROOT, process.env.AUDIT_VENV ?? ".venv");
const PYTHON = join(VENV, "bin", "python");

/** Prefix of the PostgreSQL databases the dev env creates (one per homeserver). */
const DATABASE_PREFIX = "audit_test_";

/** Runs one statement on the local PostgreSQL server's maintenance database. */
async function adminQuery(statement: string): Promise<Record<string, unknown>[]> {
    const sql = postgres({
        host: "127.0.0.1",
        port: 5432,
        user: "postgres",
        database: "postgres",
        onnotice: () => undefined,
    });
    try {
        return [...(await sql.unsafe(statement))];
    } finally {
        await sql.end();
    }
}

/**
 * Drops the databases an earlier, killed run left behind: those of this dev env that nobody is connected to
 * (a run in progress keeps its homeserver connected). Returns their names.
 */
/**
 * A database older than this belongs to no live run (a whole suite takes minutes). Its age is in its name: a
 * database with no connection is not necessarily a leftover, since a Synapse that a test restarts has none for a
 * moment, and another run on the same machine must not lose its database then.
 */
const LEFTOVER_AGE_MS = 3 * 3600 * 1000;

/** A fresh test database's name: the prefix, when it was made (seconds, base 36) and a random part. */
export function newDatabaseName(now = Date.now()): string {
    return `${DATABASE_PREFIX}${Math.floor(now / 1000).toString(36)}_${randomBytes(4).toString("hex")}`;
}

/** A test database that no live run can own: made over LEFTOVER_AGE_MS ago (names without a time are old). */
export function isLeftoverDatabase(name: string, now = Date.now()): boolean {
    const match = new RegExp(`^${DATABASE_PREFIX}([0-9a-z]+)_[0-9a-f]+$`).exec(name);
    const madeAt = match ? parseInt(match[1] as string, 36) * 1000 : 0;
    return /^[a-z0-9_]+$/.test(name) && now - madeAt > LEFTOVER_AGE_MS;
}

export async function dropLeftoverDatabases(now = Date.now()): Promise<string[]> {
    const rows = await adminQuery(
        `SELECT datname FROM pg_database WHERE datname LIKE '${DATABASE_PREFIX}%' AND datname NOT IN ` +
            "(SELECT datname FROM pg_stat_activity WHERE datname IS NOT NULL)",
    );
    const names = rows.map((row) => String(row.datname)).filter((name) => isLeftoverDatabase(name, now));
    for (const name of names) await adminQuery(`DROP DATABASE IF EXISTS ${name}`);
    return names;
}

export interface SynapseOptions {
    dir: string;
    serverName?: string;
    database?: "sqlite" | "postgres";
    /** Entries for homeserver.yaml's `modules` list. */
    modules?: { module: string; config: Record<string, unknown> }[];
    appServiceConfigFiles?: string[];
    /** Extra directories on PYTHONPATH (e.g. for the baseline module). */
    pythonPath?: string[];
    /**
     * Run the account-data stream writer on a generic worker named WORKER_NAME (PostgreSQL and Redis on
     * 127.0.0.1:6379; give each such homeserver its own server name, which names its Redis channels).
     */
    worker?: boolean;
    /** Serve Prometheus metrics at /_synapse/metrics on the main process's client listener. */
    metrics?: boolean;
}

/** The worker that writes the account-data stream when SynapseOptions.worker is set. */
export const WORKER_NAME = "acct";

export class SynapseHomeserver {
    public readonly serverName: string;
    public readonly sharedSecret = randomBytes(16).toString("hex");
    public port = 0;
    private replicationPort = 0;
    private workerPort = 0;
    /** The ports' reservations (see net.ts), held until destroy(): nobody takes them while Synapse restarts. */
    private reservations: PortReservation[] = [];
    /** The modules of the last config written (a first start that must move to other ports rewrites it). */
    private modules: { module: string; config: Record<string, unknown> }[] = [];
    private everStarted = false;
    private databaseName: string | null = null;
    private readonly main: SynapseProcess;
    /** The account-data writer worker, if there is one. */
    public readonly worker: SynapseProcess | null = null;

    public constructor(private readonly opts: SynapseOptions) {
        this.serverName = opts.serverName ?? "audit.test";
        if (opts.worker && opts.database !== "postgres") throw new Error("Synapse workers need PostgreSQL");
        this.main = new SynapseProcess(
            "Synapse",
            PYTHON,
            ["-m", "synapse.app.homeserver", "-c", this.configPath],
            () => this.env(),
            () => `${this.baseUrl}/health`,
            () => this.logTail(),
        );
        if (opts.worker) {
            this.worker = new SynapseProcess(
                `Synapse worker ${WORKER_NAME}`,
                PYTHON,
                ["-m", "synapse.app.generic_worker", "-c", this.configPath, "-c", this.workerConfigPath],
                () => this.env(),
                () => `http://127.0.0.1:${this.workerPort}/health`,
                () => this.logTail(40, this.workerLogPath),
            );
        }
    }

    public get baseUrl(): string {
        return `http://127.0.0.1:${this.port}`;
    }

    public get configPath(): string {
        return join(this.opts.dir, "homeserver.yaml");
    }

    public get logPath(): string {
        return join(this.opts.dir, "homeserver.log");
    }

    public get workerConfigPath(): string {
        return join(this.opts.dir, "worker.yaml");
    }

    public get workerLogPath(): string {
        return join(this.opts.dir, "worker.log");
    }

    /** Writes homeserver.yaml (and creates the PostgreSQL database if asked); does not start Synapse. */
    public async writeConfig(modules = this.opts.modules ?? []): Promise<void> {
        if (!existsSync(PYTHON)) {
            throw new Error(`No virtualenv at ${VENV}: run scripts/setup-synapse-venv.sh first`);
        }
        await mkdir(this.opts.dir, { recursive: true });
        this.modules = modules;
        if (!this.port) await this.reservePorts();
        const dir = this.opts.dir;
        const logConfig = (filename: string): string =>
            yaml.dump({
                version: 1,
                formatters: { precise: { format: "%(asctime)s - %(name)s - %(levelname)s - %(message)s" } },
                handlers: { file: { class: "logging.FileHandler", formatter: "precise", filename } },
                loggers: { synapse_account_data_audit: { level: "INFO" }, "synapse.app": { level: "INFO" } },
                root: { level: "WARNING", handlers: ["file"] },
                disable_existing_loggers: false,
            });
        await writeFile(join(dir, "log.yaml"), logConfig(this.logPath));
        const config = {
            server_name: this.serverName,
            public_baseurl: `${this.baseUrl}/`,
            pid_file: join(dir, "homeserver.pid"),
            listeners: [
                {
                    port: this.port,
                    bind_addresses: ["127.0.0.1"],
                    type: "http",
                    tls: false,
                    x_forwarded: false,
                    resources: [{ names: this.opts.metrics ? ["client", "metrics"] : ["client"], compress: false }],
                },
                ...(this.worker ? [replicationListener(this.replicationPort)] : []),
            ],
            ...(this.worker ? this.workerTopology() : {}),
            database: await this.databaseConfig(),
            log_config: join(dir, "log.yaml"),
            media_store_path: join(dir, "media"),
            signing_key_path: join(dir, "signing.key"),
            registration_shared_secret: this.sharedSecret,
            report_stats: false,
            trusted_key_servers: [],
            suppress_key_server_warning: true,
            enable_metrics: this.opts.metrics === true,
            presence: { enabled: false },
            url_preview_enabled: false,
            app_service_config_files: this.opts.appServiceConfigFiles ?? [],
            modules,
            // Tests and benchmarks drive many requests from few users; the appservice is exempt anyway.
            rc_message: { per_second: 10000, burst_count: 10000 },
            rc_registration: { per_second: 10000, burst_count: 10000 },
            rc_login: {
                address: { per_second: 10000, burst_count: 10000 },
                account: { per_second: 10000, burst_count: 10000 },
            },
            rc_joins: { local: { per_second: 10000, burst_count: 10000 } },
            rc_invites: {
                per_room: { per_second: 10000, burst_count: 10000 },
                per_user: { per_second: 10000, burst_count: 10000 },
            },
        };
        await writeFile(this.configPath, yaml.dump(config));
        if (this.worker) {
            await writeFile(join(dir, "worker-log.yaml"), logConfig(this.workerLogPath));
            await writeFile(
                this.workerConfigPath,
                yaml.dump({
                    worker_app: "synapse.app.generic_worker",
                    worker_name: WORKER_NAME,
                    worker_listeners: [replicationListener(this.workerPort)],
                    worker_log_config: join(dir, "worker-log.yaml"),
                }),
            );
        }
        if (!existsSync(join(dir, "signing.key"))) {
            await execFileAsync(PYTHON, ["-m", "synapse.app.homeserver", "-c", this.configPath, "--generate-keys"], {
                env: this.env(),
            });
        }
    }

    private async databaseConfig(): Promise<Record<string, unknown>> {
        if (this.opts.database !== "postgres") {
            return { name: "sqlite3", args: { database: join(this.opts.dir, "homeserver.db") } };
        }
        if (!this.databaseName) {
            this.databaseName = newDatabaseName();
            await adminQuery(
                `CREATE DATABASE ${this.databaseName} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`,
            );
        }
        return {
            name: "psycopg2",
            args: {
                user: "postgres",
                host: "127.0.0.1",
                port: 5432,
                database: this.databaseName,
                cp_min: 1,
                cp_max: 10,
            },
        };
    }

    private env(): NodeJS.ProcessEnv {
        const pythonPath = [...(this.opts.pythonPath ?? []), process.env.PYTHONPATH ?? ""].filter(Boolean).join(":");
        return { ...process.env, PYTHONPATH: pythonPath };
    }

    /** The main process, with a `replication` listener and the worker in its instance_map (worker mode). */
    private workerTopology(): Record<string, unknown> {
        return {
            instance_map: {
                main: { host: "127.0.0.1", port: this.replicationPort },
                [WORKER_NAME]: { host: "127.0.0.1", port: this.workerPort },
            },
            stream_writers: { account_data: [WORKER_NAME] },
            redis: { enabled: true, host: "127.0.0.1", port: 6379 },
        };
    }

    private async reservePorts(): Promise<void> {
        const count = this.worker ? 3 : 1;
        const reservations = await Promise.all(Array.from({ length: count }, () => reservePort()));
        this.reservations.push(...reservations);
        [this.port, this.replicationPort, this.workerPort] = reservations.map((r) => r.port) as [
            number,
            number,
            number,
        ];
    }

    private async releasePorts(): Promise<void> {
        await Promise.all(this.reservations.splice(0).map((r) => r.release()));
    }

    /**
     * Starts Synapse (then its worker) and resolves when they answer; rejects with the log if one exits. Its
     * ports are reserved (net.ts), so nobody else can be listening there, short of a process that bound one
     * before it was reserved (e.g. a run of an older harness that probed a port, let it go and bound it later):
     * if the first start finds a port taken, it moves to fresh ports and starts again (later starts cannot: the
     * rest of the environment knows the ports by then).
     */
    public async start(timeoutMs = 120_000): Promise<void> {
        for (let attempt = 1; ; attempt++) {
            try {
                await this.main.start(timeoutMs);
                await this.worker?.start(timeoutMs);
                this.everStarted = true;
                return;
            } catch (err) {
                const message = err instanceof Error ? err.message : String(err);
                if (this.everStarted || attempt >= 3 || !saysAddressInUse(message)) throw err;
                process.stderr.write(`Synapse could not bind a port (attempt ${attempt}); moving to fresh ports\n`);
                await this.stop("SIGKILL");
                await this.releasePorts();
                await this.reservePorts();
                await this.writeConfig(this.modules);
            }
        }
    }

    /** The running Synapse's process ID (the benchmark reads its CPU time). */
    public get pid(): number | undefined {
        return this.main.pid;
    }

    /** The last lines of homeserver.log (or another log), for error messages. */
    public logTail(lines = 40, path = this.logPath): string {
        if (!existsSync(path)) return "";
        return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
    }

    /** Starts Synapse expecting it to refuse; returns what it printed. */
    public async startExpectingFailure(timeoutMs = 120_000): Promise<string> {
        try {
            await this.start(timeoutMs);
        } catch (err) {
            return (err as Error).message;
        }
        await this.stop();
        throw new Error("Synapse started, but it was expected to refuse");
    }

    /** Stops the worker, then the main process (SIGKILL for a crash). */
    public async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
        await this.worker?.stop(signal);
        await this.main.stop(signal);
    }

    public async restart(): Promise<void> {
        await this.stop();
        await this.start();
    }

    /** Stops Synapse, drops its PostgreSQL database, if any, and lets its ports go. */
    public async destroy(): Promise<void> {
        await this.stop();
        await this.releasePorts();
        if (this.databaseName) {
            await adminQuery(`DROP DATABASE IF EXISTS ${this.databaseName} WITH (FORCE)`);
            this.databaseName = null;
        }
    }

    /** Runs one SQL query against Synapse's database (SQLite or PostgreSQL) through the venv's Python. */
    public async query(sqlText: string): Promise<unknown[][]> {
        const script = [
            "import json, sys, yaml",
            "cfg = yaml.safe_load(open(sys.argv[1]))['database']",
            "if cfg['name'] == 'sqlite3':",
            "    import sqlite3; conn = sqlite3.connect(cfg['args']['database'])",
            "else:",
            "    import psycopg2; a = cfg['args']; conn = psycopg2.connect(host=a['host'], port=a['port'], user=a['user'], dbname=a['database'])",
            "cur = conn.cursor(); cur.execute(sys.argv[2]); rows = cur.fetchall() if cur.description else []",
            "conn.commit(); print(json.dumps(rows))",
        ].join("\n");
        const { stdout } = await execFileAsync(PYTHON, ["-c", script, this.configPath, sqlText]);
        return JSON.parse(stdout) as unknown[][];
    }
}

function replicationListener(port: number): Record<string, unknown> {
    return {
        port,
        bind_addresses: ["127.0.0.1"],
        type: "http",
        tls: false,
        x_forwarded: false,
        resources: [{ names: ["replication"], compress: false }],
    };
}
