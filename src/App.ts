/**
 * Builds and starts the appservice from a parsed config and registration; `main.ts` is the process around
 * it (files, arguments, signals). Tests call `start()` in-process.
 */
import { AppService, AppServiceRegistration, Bridge, Logger } from "matrix-appservice-bridge";
import { Registry } from "prom-client";
import type { AppConfig } from "./config/Config.js";
import { ConfigError, StartupError } from "./Errors.js";
import { ChangeProcessor } from "./ingest/ChangeProcessor.js";
import { DeliveryHealth } from "./ingest/DeliveryHealth.js";
import { addHealthRoute } from "./ingest/HealthRoute.js";
import { addIngestRoutes } from "./ingest/IngestRoute.js";
import { PostedLinks } from "./ingest/PostedLinks.js";
import { wakeHost } from "./ingest/WakeHost.js";
import { joinAuditRoom } from "./matrix/AuditRoom.js";
import { EventSender, realClock } from "./matrix/EventSender.js";
import { RoomSafetyMonitor } from "./matrix/RoomSafetyMonitor.js";
import { SenderDevice } from "./matrix/SenderDevice.js";
import { Metrics } from "./Metrics.js";
import { AuditModule } from "./modules/AuditModule.js";
import { JsonlSink } from "./export/JsonlSink.js";
import { ModuleHost } from "./modules/ModuleHost.js";

const log = new Logger("App");

export interface StartOptions {
    /** Prometheus registry for our metrics; a fresh one by default. */
    registry?: Registry;
    /** Configure console logging from the config (off in tests that want quiet output). */
    configureLogging?: boolean;
}

export interface RunningApp {
    readonly auditRoomId: string;
    readonly metrics: Metrics;
    stop(): Promise<void>;
}

function checkSenderNamespace(config: AppConfig, registration: AppServiceRegistration): void {
    const senderLocalpart = registration.getSenderLocalpart();
    const isBot = senderLocalpart !== null && config.sender === `@${senderLocalpart}:${config.homeserver.server_name}`;
    if (!isBot && !registration.isUserMatch(config.sender, true)) {
        throw new ConfigError(
            "sender",
            `'sender' (${config.sender}) is not in the registration's exclusive user namespace; ` +
                "use the registration's sender_localpart or add a matching users regex",
        );
    }
}

export async function start(
    config: AppConfig,
    registration: AppServiceRegistration,
    options: StartOptions = {},
): Promise<RunningApp> {
    if (config.export.stdout) {
        // stdout carries the export's lines, one JSON object each: winston's console transport writes to
        // console._stdout, so the log goes to stderr instead.
        Object.defineProperty(console, "_stdout", { value: process.stderr, configurable: true });
    }
    if (options.configureLogging !== false) {
        Logger.configure({ console: config.logging.level, json: config.logging.json });
    }
    checkSenderNamespace(config, registration);
    const hsToken = registration.getHomeserverToken();
    if (!hsToken) {
        throw new ConfigError("registration", "The registration file has no hs_token");
    }
    const metrics = new Metrics(options.registry ?? new Registry());

    const bridge = new Bridge({
        homeserverUrl: config.homeserver.url,
        domain: config.homeserver.server_name,
        registration,
        disableStores: true,
        controller: { onEvent: () => undefined },
    });
    try {
        await bridge.initialise();
    } catch (err) {
        throw new StartupError(
            `Cannot reach the homeserver at ${config.homeserver.url}: ${(err as Error).message}. ` +
                "Check homeserver.url and that the homeserver is running.",
            { cause: err },
        );
    }

    const senderIntent = bridge.getIntent(config.sender);
    const auditRoomId = await joinAuditRoom(senderIntent, config.sender, config.audit_room);
    log.info(`${config.sender} is in the audit room ${auditRoomId}`);

    const device = new SenderDevice(senderIntent.matrixClient, config.sender, config.sending.device_id);
    metrics.durableTransactionIds.set((await device.ensure()) ? 1 : 0);
    const sender = new EventSender(
        (userId) => bridge.getIntent(userId).matrixClient,
        {
            initialMs: config.sending.retry_initial_ms,
            maxMs: config.sending.retry_max_ms,
            deadlineMs: config.sending.batch_deadline_ms,
        },
        (reason) => metrics.sendRetries.inc({ reason }),
        realClock,
        {
            queryFor: (userId) => device.queryFor(userId),
            ensure: async () => {
                const durable = await device.ensure();
                metrics.durableTransactionIds.set(durable ? 1 : 0);
                return durable;
            },
        },
    );
    const modules = new ModuleHost(config.homeserver.server_name, sender, () => metrics.moduleFailures.inc());
    const audit = new AuditModule(
        { audit_room: auditRoomId, sender: config.sender, audit: config.audit },
        modules.api,
        {
            onRecorded: (level) => metrics.records.inc({ level }),
            onQuarantined: (cause) => metrics.quarantined.inc({ cause }),
        },
    );
    const links = new PostedLinks((record) => audit.willPost(record));
    const delivery = new DeliveryHealth(metrics);
    const sink = await openExport(config);
    const processor = new ChangeProcessor(
        modules,
        metrics,
        config.sending.max_in_flight,
        undefined,
        links,
        delivery,
        sink,
    );

    const appService = new AppService({
        homeserverToken: hsToken,
        // One body-parser serves every route, so this limit also applies to the homeserver's transactions,
        // which for this appservice only ever carry a few membership events.
        httpMaxSizeBytes: config.ingest.max_body_bytes,
    });
    const shutdown = { stopping: false };
    const { enabled, ...digest } = config.sending.digest;
    const ingestToken = config.ingest.token ?? hsToken;
    addIngestRoutes(appService, processor, ingestToken, metrics, shutdown, enabled ? digest : null, delivery);
    const roomSafety = new RoomSafetyMonitor(senderIntent.matrixClient, auditRoomId, config.sender, metrics);
    await roomSafety.refresh(true);
    addHealthRoute(
        appService,
        () => roomSafety.problems(),
        () => delivery.snapshot(),
        () => delivery.ingest(),
    );

    await bridge.listen(config.listen.port, config.listen.bind_address, 511, appService);
    log.info(`Listening on ${config.listen.bind_address}:${config.listen.port}`);
    // Now that batches can be taken: the host module's delivery may be in a backoff of up to a minute.
    void wakeHost(config.homeserver.url, ingestToken, delivery);
    // The stall metric is time-based: refresh it without waiting for a /health request.
    const stallCheck = setInterval(() => delivery.snapshot(), 30_000);
    stallCheck.unref();

    return {
        auditRoomId,
        metrics,
        stop: async () => {
            // While a backlog drains, the host module sends its next batch on the same keep-alive connection
            // as soon as one is answered, so the server would never become idle: refuse new batches (they
            // stay in the outbox) and let the batch in progress finish.
            shutdown.stopping = true;
            clearInterval(stallCheck);
            // A held batch (the homeserver down, the sender not allowed to post) never finishes: an admin's stop
            // must not wait for it. It stays in the outbox, unacknowledged, and the next start posts it (the
            // same transaction IDs: nothing twice).
            const finished = await settlesWithin(processor.idle(), STOP_GRACE_MS);
            if (!finished) {
                log.warn(`Stopping with a batch unfinished after ${STOP_GRACE_MS / 1000} s; the host module keeps it`);
            }
            await sink?.close();
            // An unfinished batch's request is still open, and the server would wait for it.
            await settlesWithin(bridge.close(), finished ? STOP_GRACE_MS : 1_000);
        },
    };
}

/** How long a stop waits for the batch in progress. */
export const STOP_GRACE_MS = 10_000;

/** True if `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
    });
    const settled = promise.then(
        () => true,
        () => true,
    );
    try {
        return await Promise.race([settled, timeout]);
    } finally {
        clearTimeout(timer);
    }
}

/** The JSONL export, if configured, opened (a torn last line cut) before any batch is taken. */
async function openExport(config: AppConfig): Promise<JsonlSink | null> {
    const { jsonl, stdout } = config.export;
    if (jsonl.path === null && !stdout) return null;
    const file =
        jsonl.path === null
            ? null
            : { path: jsonl.path, rotateBytes: jsonl.rotate_bytes, rotateSeconds: jsonl.rotate_seconds };
    const sink = new JsonlSink(config.audit, { file, stdout: stdout ? process.stdout : null });
    try {
        await sink.open();
    } catch (err) {
        throw new StartupError(`Cannot open the export file ${jsonl.path}: ${(err as Error).message}`, { cause: err });
    }
    return sink;
}
