/**
 * The whole pipeline on loopback, shared by the e2e tests, the demo and the benchmark: a throwaway Synapse
 * with our host module, the appservice in its own process, an auditor user in the audit room.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import yaml from "js-yaml";
import { AppServiceRegistration } from "matrix-appservice-bridge";
import { completeRegistration } from "../Registration.js";
import { AppserviceProcess, MAIN_JS } from "./AppserviceProcess.js";
import { AuditorClient } from "./AuditorClient.js";
import { type MatrixHttp, registerUser } from "./MatrixHttp.js";
import { type PortReservation, reservePort, saysAddressInUse } from "./net.js";
import { PROJECT_ROOT, SynapseHomeserver, WORKER_NAME } from "./Synapse.js";

export const HOST_MODULE = "synapse_account_data_audit.AccountDataAuditModule";
/** The baseline: Synapse's example module (inline send), re-created under synapse-module/tests/baseline. */
export const SEED_MODULE = "baseline.seed_reference_module.InlineAuditModule";
export const SENDER_LOCALPART = "account-data-audit";
/** A test build of the host module whose writer never commits (synapse-module/tests/faults). */
export const HELD_WRITER_MODULE = "faults.held_writer_module.HeldWriterAuditModule";

export interface ModuleEntry {
    module: string;
    config: Record<string, unknown>;
}

export interface TestEnvOptions {
    database?: "sqlite" | "postgres";
    /**
     * Synapse with a generic worker as the account-data stream writer (PostgreSQL and Redis; see
     * SynapseOptions.worker); the host module delivers from that worker.
     */
    workers?: boolean;
    /** Serve Synapse's Prometheus metrics at /_synapse/metrics on the main process. */
    synapseMetrics?: boolean;
    /** Overrides for the host module's config. */
    hostModuleConfig?: Record<string, unknown>;
    /** Overrides for the appservice's config (merged at the top level). */
    appserviceConfig?: Record<string, unknown>;
    /**
     * Which account-data module Synapse loads: ours (default), the seed's inline-send baseline (it posts as
     * the auditor), or none. Only "ours" starts the appservice.
     */
    hostModule?: "ours" | "seed" | "none";
    /** Start the appservice (default true). */
    startAppservice?: boolean;
    /** Keep the temporary directory (for the demo's printout or debugging). */
    keepDir?: boolean;
}

export interface VerifyRun {
    code: number | null;
    report: Record<string, unknown> | null;
    stdout: string;
    stderr: string;
}

export interface TestEnv {
    dir: string;
    synapse: SynapseHomeserver;
    appservice: AppserviceProcess;
    registration: AppServiceRegistration;
    registrationPath: string;
    configPath: string;
    senderUserId: string;
    auditRoomId: string;
    auditor: AuditorClient;
    /** Registers a fresh local user. */
    newUser(localpart: string): Promise<MatrixHttp>;
    /** Rewrites the appservice's config.yaml from `config` (used by misconfiguration tests). */
    writeAppserviceConfig(config: Record<string, unknown>): Promise<void>;
    appserviceConfig: Record<string, unknown>;
    /** Synapse's `modules` entry for the host module. */
    hostModuleEntry: ModuleEntry;
    /**
     * Stops Synapse (SIGTERM, or SIGKILL for a crash) and starts it again, optionally with another module in
     * place of the host module (same config), e.g. HELD_WRITER_MODULE.
     */
    restartSynapse(opts?: { signal?: NodeJS.Signals; module?: string }): Promise<void>;
    /** Runs `matrix-account-data-audit verify --json` on this environment's config; its exit code and report. */
    verify(args?: string[]): Promise<VerifyRun>;
    /** The same for the account-data writer worker alone (`workers` environments). */
    restartWorker(opts?: { signal?: NodeJS.Signals; module?: string }): Promise<void>;
    tearDown(): Promise<void>;
}

export async function createTestEnv(opts: TestEnvOptions = {}): Promise<TestEnv> {
    const dir = await mkdtemp(join(tmpdir(), "account-data-audit-"));
    // Reserved for the environment's life (net.ts): nobody takes it while the appservice is down or restarting.
    const ports: PortReservation[] = [await reservePort()];
    const asPort = (ports[0] as PortReservation).port;
    // Synapse names its Redis channels after the server name: worker homeservers sharing the one Redis need
    // their own.
    const serverName = opts.workers ? `audit-${randomBytes(4).toString("hex")}.test` : "audit.test";
    const senderUserId = `@${SENDER_LOCALPART}:${serverName}`;

    const registration = completeRegistration(
        new AppServiceRegistration(`http://127.0.0.1:${asPort}`),
        SENDER_LOCALPART,
    );
    const registrationPath = join(dir, "registration.yaml");
    registration.outputAsYaml(registrationPath);

    const hostModule = opts.hostModule ?? "ours";
    const ourModule: ModuleEntry = {
        module: HOST_MODULE,
        config: {
            appservice_url: `http://127.0.0.1:${asPort}`,
            registration_file: registrationPath,
            backoff_initial_seconds: 0.05,
            backoff_max_seconds: 1,
            ...(opts.workers ? { delivery_instance: WORKER_NAME } : {}),
            ...opts.hostModuleConfig,
        },
    };
    const synapse = new SynapseHomeserver({
        dir: join(dir, "synapse"),
        serverName,
        database: opts.workers ? "postgres" : opts.database,
        worker: opts.workers,
        metrics: opts.synapseMetrics,
        appServiceConfigFiles: [registrationPath],
        modules: hostModule === "ours" ? [ourModule] : [],
        pythonPath: [join(PROJECT_ROOT, "synapse-module", "tests")],
    });
    const env: Partial<TestEnv> = { dir, synapse };
    const releasePorts = async (): Promise<void> => {
        await Promise.all(ports.splice(0).map((p) => p.release()));
    };
    try {
        await synapse.writeConfig();
        await synapse.start();

        const auditorHttp = await registerUser(synapse.baseUrl, synapse.sharedSecret, "auditor", true);
        const auditRoomId = await auditorHttp.createRoom({ name: "Account data audit", preset: "private_chat" });
        await auditorHttp.invite(auditRoomId, senderUserId);
        if (hostModule === "seed") {
            // The baseline needs the room at startup: configure it now and restart.
            await synapse.stop();
            await synapse.writeConfig([
                { module: SEED_MODULE, config: { audit_room: auditRoomId, sender: auditorHttp.userId } },
            ]);
            await synapse.start();
        }

        const appserviceConfig: Record<string, unknown> = {
            audit_room: auditRoomId,
            sender: senderUserId,
            homeserver: { url: synapse.baseUrl, server_name: serverName },
            listen: { bind_address: "127.0.0.1", port: asPort },
            sending: { retry_initial_ms: 50, retry_max_ms: 1000 },
            logging: { level: "warn" },
            ...opts.appserviceConfig,
        };
        const configPath = join(dir, "config.yaml");
        const writeAppserviceConfig = (config: Record<string, unknown>): Promise<void> =>
            writeFile(configPath, yaml.dump(config));
        await writeAppserviceConfig(appserviceConfig);
        const appservice = new AppserviceProcess(configPath, registrationPath, asPort);
        Object.assign(env, {
            appservice,
            registration,
            registrationPath,
            configPath,
            senderUserId,
            auditRoomId,
            appserviceConfig,
            writeAppserviceConfig,
            auditor: new AuditorClient(auditorHttp, auditRoomId, senderUserId),
            newUser: (localpart: string) => registerUser(synapse.baseUrl, synapse.sharedSecret, localpart),
            hostModuleEntry: ourModule,
            verify: (args: string[] = []) => runVerify(configPath, registrationPath, args),
            restartSynapse: async (opts: { signal?: NodeJS.Signals; module?: string } = {}) => {
                const { signal = "SIGTERM", module = HOST_MODULE } = opts;
                await synapse.stop(signal);
                await synapse.writeConfig([{ ...ourModule, module }]);
                await synapse.start();
            },
            restartWorker: async (opts: { signal?: NodeJS.Signals; module?: string } = {}) => {
                const { signal = "SIGTERM", module = HOST_MODULE } = opts;
                if (!synapse.worker) throw new Error("This environment has no worker");
                await synapse.worker.stop(signal);
                await synapse.writeConfig([{ ...ourModule, module }]);
                await synapse.worker.start();
            },
        });
        envPorts.set(env as TestEnv, ports);
        if (hostModule === "ours" && opts.startAppservice !== false) {
            await startAppserviceMovingIfTaken(env as TestEnv);
        }
    } catch (err) {
        await tearDownParts(env, opts.keepDir).finally(releasePorts);
        throw err;
    }
    env.tearDown = () => tearDownParts(env, opts.keepDir).finally(releasePorts);
    return env as TestEnv;
}

/** Each environment's port reservations (the appservice's). */
const envPorts = new WeakMap<TestEnv, PortReservation[]>();

/**
 * The appservice's first start (createTestEnv does it unless told not to). Its port is reserved (net.ts), so nobody else can be listening there, short of
 * a process that bound it before it was reserved (a run of an older harness that probed it, let it go and bound
 * it later). Then the environment moves the appservice to a fresh port (registration, host module config,
 * config.yaml) and restarts Synapse, which reads both at startup; nothing has happened in it yet.
 */
export async function startAppserviceMovingIfTaken(env: TestEnv): Promise<void> {
    const ports = envPorts.get(env);
    if (!ports) throw new Error("Not an environment of createTestEnv");
    for (let attempt = 1; ; attempt++) {
        try {
            await env.appservice.start();
            return;
        } catch (err) {
            if (attempt >= 3 || !saysAddressInUse(env.appservice.output)) throw err;
            process.stderr.write(`The appservice could not bind its port (attempt ${attempt}); moving it\n`);
            const old = `http://127.0.0.1:${env.appservice.port}`;
            const fresh = await reservePort();
            await Promise.all(ports.splice(0, ports.length, fresh).map((p) => p.release()));
            const url = `http://127.0.0.1:${fresh.port}`;
            env.registration.setAppServiceUrl(url);
            env.registration.outputAsYaml(env.registrationPath);
            // Unless the host module was pointed elsewhere (a test's own receiver or tap).
            if (env.hostModuleEntry.config.appservice_url === old) env.hostModuleEntry.config.appservice_url = url;
            env.appserviceConfig.listen = { bind_address: "127.0.0.1", port: fresh.port };
            await env.writeAppserviceConfig(env.appserviceConfig);
            env.appservice.port = fresh.port;
            await env.restartSynapse();
        }
    }
}

async function tearDownParts(env: Partial<TestEnv>, keepDir = false): Promise<void> {
    await env.appservice?.stop().catch(() => undefined);
    await env.synapse?.destroy().catch(() => undefined);
    if (env.dir && !keepDir && !process.env.AUDIT_KEEP_TEST_DIRS) {
        await rm(env.dir, { recursive: true, force: true });
    }
}

/** Rows left in the host module's outbox. */
export async function outboxDepth(env: TestEnv): Promise<number> {
    const rows = await env.synapse.query("SELECT COUNT(*) FROM account_data_audit_outbox");
    return Number(rows[0]?.[0]);
}

async function runVerify(configPath: string, registrationPath: string, args: string[]): Promise<VerifyRun> {
    return runVerifyCommand(["-c", configPath, "-f", registrationPath, "--json", ...args]);
}

/** Runs `matrix-account-data-audit verify ARGS` to its end (add --json for a parsed report). */
export async function runVerifyCommand(args: string[]): Promise<VerifyRun> {
    const argv = [MAIN_JS, "verify", ...args];
    return new Promise((resolve, reject) => {
        execFile(process.execPath, argv, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
            const code = err ? ((err as { code?: number }).code ?? null) : 0;
            if (err && typeof code !== "number") {
                reject(err);
                return;
            }
            const report = stdout.startsWith("{") ? (JSON.parse(stdout) as Record<string, unknown>) : null;
            resolve({ code, report, stdout, stderr });
        });
    });
}
