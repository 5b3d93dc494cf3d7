/**
 * HTTP handlers for the host module's change batches, plus the error middleware that turns body-parser
 * failures into Matrix errors (the appservice library answers them with HTML pages otherwise).
 */
import { timingSafeEqual } from "node:crypto";
import type { ErrorRequestHandler, Request, RequestHandler, Response } from "express";
import { type AppService, Logger } from "matrix-appservice-bridge";
import type { Metrics } from "../Metrics.js";
import { BatchFailedError, type BatchResult, type ChangeProcessor } from "./ChangeProcessor.js";
import { type DeliveryHealth, TOKEN_MISMATCH } from "./DeliveryHealth.js";
import { BadFieldError, CHANGES_PATH, parseChangeBatch } from "./Protocol.js";

const log = new Logger("IngestRoute");

export function sendMatrixError(res: Response, status: number, errcode: string, error: string, extra = {}): void {
    res.status(status).json({ errcode, error, ...extra });
}

function tokensEqual(presented: string, expected: Buffer): boolean {
    const given = Buffer.from(presented, "utf8");
    // timingSafeEqual needs equal lengths; compare against itself so a length mismatch takes the same time.
    return given.length === expected.length ? timingSafeEqual(given, expected) : !timingSafeEqual(given, given);
}

/** The shortest time between two "token mismatch" log lines (the host module retries every few seconds). */
const TOKEN_LOG_EVERY_MS = 60_000;

export function bearerTokenGuard(token: string, health?: DeliveryHealth, now: () => number = Date.now): RequestHandler {
    const expected = Buffer.from(token, "utf8");
    let loggedAt = -Infinity;
    // A refused batch is a stopped trail: say why, naming the keys to compare, once a minute at most.
    const refused = (what: string): void => {
        health?.tokenRefused();
        if (now() - loggedAt < TOKEN_LOG_EVERY_MS) return;
        loggedAt = now();
        log.error(`Refused a batch from the host module (${what}): ${TOKEN_MISMATCH}`);
    };
    return (req, res, next) => {
        const header = req.headers.authorization;
        const match = header ? /^Bearer (.+)$/.exec(header) : null;
        if (!match) {
            refused("401 M_MISSING_TOKEN: no bearer token");
            sendMatrixError(res, 401, "M_MISSING_TOKEN", "Missing 'Authorization: Bearer <token>' header");
            return;
        }
        if (!tokensEqual(match[1] as string, expected)) {
            refused("403 M_UNKNOWN_TOKEN");
            sendMatrixError(res, 403, "M_UNKNOWN_TOKEN", `Unrecognised token (${TOKEN_MISMATCH})`);
            return;
        }
        next();
    };
}

/** Set when the appservice is stopping: new batches are refused so keep-alive connections go idle. */
export interface ShutdownState {
    stopping: boolean;
}

/** How long a batch may take before its answer says it is still being posted (see changesHandler). */
export const PENDING_AFTER_MS = 40_000;

/** Digest mode as the host module is told it with every answer (null: off). */
export interface DigestAdvice {
    min_backlog: number;
    max_changes: number;
    max_bytes: number;
    lanes: number;
}

export function changesHandler(
    processor: ChangeProcessor,
    metrics: Metrics,
    shutdown?: ShutdownState,
    digest: DigestAdvice | null = null,
    health?: DeliveryHealth,
    pendingAfterMs = PENDING_AFTER_MS,
): RequestHandler {
    return (req: Request, res: Response) => {
        if (shutdown?.stopping) {
            // The host module keeps the batch and retries after its backoff, against the next process.
            res.setHeader("Connection", "close");
            sendMatrixError(res, 503, "M_UNKNOWN", "The appservice is shutting down");
            return;
        }
        if (!req.is("application/json")) {
            metrics.batchesReceived.inc({ result: "rejected" });
            sendMatrixError(res, 400, "M_NOT_JSON", "Content-Type must be application/json");
            return;
        }
        let batch;
        try {
            batch = parseChangeBatch(req.body);
        } catch (err) {
            if (!(err instanceof BadFieldError)) throw err;
            metrics.batchesReceived.inc({ result: "rejected" });
            log.warn(`Rejected a batch: ${err.message}`);
            sendMatrixError(res, 400, "M_BAD_JSON", err.message, { field: err.field });
            return;
        }
        health?.batchArrived(batch.checkpointIntervalSeconds);
        // Every answer says how far each sink other than the room got; without `sinks` the host module takes the
        // room for the only one (older appservices).
        const sinks = () => (processor.exporting ? { sinks: { jsonl: processor.exportedThrough() } } : {});
        if (batch.sinksOnly !== null) {
            const forExport = batch.sinksOnly.includes("jsonl") && processor.exporting;
            (forExport ? processor.exportOnly(batch.changes, batch.ackedHead) : Promise.resolve(null)).then(
                () => {
                    metrics.batchesReceived.inc({ result: "ok" });
                    res.status(200).json({ ...sinks(), digest });
                },
                (err: unknown) => {
                    metrics.batchesReceived.inc({ result: "failed" });
                    sendMatrixError(res, 503, "M_UNKNOWN", (err as Error).message, { ...sinks(), digest });
                },
            );
            return;
        }
        const processing = processor.process(
            batch.changes,
            batch.follows,
            batch.postedHead,
            batch.ackedHead,
            batch.again,
        );
        const seqs = `${batch.changes[0]?.seq}-${batch.changes.at(-1)?.seq}`;
        answerWhenPosted(res, processing, { metrics, digest, sinks, seqs, pendingAfterMs });
    };
}

/**
 * Answers a batch once it is posted, or, after `pendingAfterMs`, that it is still being posted. The host module's
 * HTTP client (Synapse's) gives up on an answer after 60 s, and a batch is answered only once it and every batch
 * before it are posted, which one user's backlog can make take minutes: before then the host module is told to
 * send the same batch again at once, and it joins the work under way (ChangeProcessor). 503, so that a host
 * module older than this retries too. The response (and through it the request's whole body) is dropped once
 * answered: the batch may be posted for minutes more, while the host module sends it again every 40 s.
 */
function answerWhenPosted(
    response: Response,
    processing: Promise<BatchResult>,
    context: {
        metrics: Metrics;
        digest: DigestAdvice | null;
        sinks: () => Record<string, unknown>;
        seqs: string;
        pendingAfterMs: number;
    },
): void {
    const { metrics, digest, sinks, seqs } = context;
    let answering: Response | null = response;
    const take = (): Response | null => {
        const res = answering;
        answering = null;
        return res !== null && !res.headersSent ? res : null;
    };
    const deadline = setTimeout(() => {
        const res = take();
        if (res === null) return;
        metrics.batchesReceived.inc({ result: "pending" });
        sendMatrixError(res, 503, "M_UNKNOWN", "The batch is still being posted; send it again", {
            pending: true,
            digest,
        });
    }, context.pendingAfterMs);
    processing.then(
        (result) => {
            clearTimeout(deadline);
            const res = take();
            if (res === null) return;
            metrics.batchesReceived.inc({ result: "ok" });
            res.status(200).json({
                acknowledged_through: result.acknowledgedThrough,
                posted_head: result.postedHead,
                digest,
                ...sinks(),
            });
        },
        (err: unknown) => {
            clearTimeout(deadline);
            log.warn(`Batch seq ${seqs} not acknowledged: ${(err as Error).message}`);
            const res = take();
            if (res === null) return;
            metrics.batchesReceived.inc({ result: "failed" });
            const failure = err instanceof BatchFailedError ? err : null;
            // Not bad input: the homeserver would not take the audit event. The host module keeps the batch and
            // retries; what was already handled is reported so it can be dropped.
            sendMatrixError(res, 503, "M_UNKNOWN", (err as Error).message, {
                processed_through: failure?.processedThrough ?? null,
                digest,
                ...(failure && failure.processedThrough !== null ? { posted_head: failure.postedHead } : {}),
                ...sinks(),
            });
        },
    );
}

interface BodyParserError {
    type?: string;
    status?: number;
    limit?: number;
}

/** Maps body-parser errors to Matrix errors; everything else is a bug and gets a JSON 500. */
export const matrixErrorMiddleware: ErrorRequestHandler = (err: BodyParserError, _req, res, next) => {
    if (res.headersSent) {
        next(err);
        return;
    }
    switch (err.type) {
        case "entity.too.large":
            sendMatrixError(res, 413, "M_TOO_LARGE", `Request body is larger than the limit of ${err.limit} bytes`);
            return;
        case "entity.parse.failed":
            sendMatrixError(res, 400, "M_NOT_JSON", "Request body is not valid JSON");
            return;
        case "encoding.unsupported":
        case "charset.unsupported":
            sendMatrixError(res, 400, "M_NOT_JSON", "Request body must be UTF-8 JSON");
            return;
        case "request.aborted":
        case "request.size.invalid":
            sendMatrixError(res, 400, "M_UNKNOWN", "Incomplete request body");
            return;
    }
    if (typeof err.status === "number" && err.status >= 400 && err.status < 500) {
        sendMatrixError(res, err.status, "M_UNKNOWN", String((err as Error).message ?? "Bad request"));
        return;
    }
    log.error("Unhandled error while serving a request", err);
    sendMatrixError(res, 500, "M_UNKNOWN", "Internal server error");
};

/** Adds the change endpoint, /metrics and the Matrix error middleware to the appservice's listener. */
export function addIngestRoutes(
    appService: AppService,
    processor: ChangeProcessor,
    token: string,
    metrics: Metrics,
    shutdown?: ShutdownState,
    digest: DigestAdvice | null = null,
    health?: DeliveryHealth,
): void {
    const app = appService.expressApp;
    app.post(
        CHANGES_PATH,
        bearerTokenGuard(token, health),
        changesHandler(processor, metrics, shutdown, digest, health),
    );
    app.get("/metrics", (_req, res) => {
        metrics.registry.metrics().then(
            (text) => res.type(metrics.registry.contentType).send(text),
            (err: unknown) => res.status(500).send(String(err)),
        );
    });
    app.use(matrixErrorMiddleware);
}
