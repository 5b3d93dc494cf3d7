/** The ingest route's answers, driven through its handlers with a fake request and response (no listener). */
import type { NextFunction, Request, Response } from "express";
import { type AppService, Logger } from "matrix-appservice-bridge";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BatchFailedError, type ChangeProcessor } from "../../src/ingest/ChangeProcessor.js";
import { type DeliveryHealth, TOKEN_MISMATCH } from "../../src/ingest/DeliveryHealth.js";
import {
    addIngestRoutes,
    bearerTokenGuard,
    changesHandler,
    type DigestAdvice,
    matrixErrorMiddleware,
} from "../../src/ingest/IngestRoute.js";
import { CHANGES_PATH } from "../../src/ingest/Protocol.js";
import { Metrics } from "../../src/Metrics.js";
import type { AuditRecord } from "../../src/modules/ModuleHost.js";

const TOKEN = "hs-token-for-tests";

class FakeResponse {
    public statusCode = 200;
    public body: unknown = undefined;
    public sentText: string | undefined = undefined;
    public contentType: string | undefined = undefined;
    public headersSent = false;
    public readonly headers: Record<string, string> = {};
    private answered!: () => void;
    public readonly done = new Promise<void>((resolve) => (this.answered = resolve));
    public status(code: number): this {
        this.statusCode = code;
        return this;
    }
    public json(body: unknown): this {
        this.body = body;
        this.headersSent = true;
        this.answered();
        return this;
    }
    public type(type: string): this {
        this.contentType = type;
        return this;
    }
    public send(text: string): this {
        this.sentText = text;
        this.answered();
        return this;
    }
    public setHeader(name: string, value: string): this {
        this.headers[name] = value;
        return this;
    }
}

function request(body: unknown, headers: Record<string, string> = {}, json = true): Request {
    return { body, headers, is: (type: string) => (json && type === "application/json" ? type : false) } as never;
}

const asRes = (res: FakeResponse) => res as unknown as Response;

function wireChange(seq: number): Record<string, unknown> {
    return { id: `id${seq}`, seq, ts: 0, user_id: "@alice:example.org", room_id: null, type: "m.t", content: "{}" };
}

interface FakeProcessor {
    exporting: boolean;
    exported: number | null;
    calls: unknown[][];
    exportCalls: unknown[][];
    result: () => Promise<unknown>;
    exportResult: () => Promise<number | null>;
}

function fakeProcessor(): { fake: FakeProcessor; processor: ChangeProcessor } {
    const fake: FakeProcessor = {
        exporting: false,
        exported: null,
        calls: [],
        exportCalls: [],
        result: async () => ({ acknowledgedThrough: null, postedHead: null }),
        exportResult: async () => null,
    };
    const processor = {
        get exporting() {
            return fake.exporting;
        },
        exportedThrough: () => fake.exported,
        process: (...args: unknown[]) => {
            fake.calls.push(args);
            return fake.result();
        },
        exportOnly: (...args: unknown[]) => {
            fake.exportCalls.push(args);
            return fake.exportResult();
        },
    };
    return { fake, processor: processor as unknown as ChangeProcessor };
}

const batches = (metrics: Metrics, result: string) =>
    metrics.batchesReceived.get().then((m) => m.values.find((v) => v.labels.result === result)?.value ?? 0);

const DIGEST: DigestAdvice = { min_backlog: 100, max_changes: 50, max_bytes: 60_000, lanes: 2 };

describe("the bearer token guard", () => {
    let errors: ReturnType<typeof vi.spyOn>;
    beforeEach(() => {
        errors = vi.spyOn(Logger.prototype, "error").mockImplementation(() => undefined);
    });
    afterEach(() => {
        vi.restoreAllMocks();
    });

    /** A guard, and a function sending it a request with `authorization` (null: no such header). */
    function guarded(authorization: string | null, health?: DeliveryHealth, now?: () => number) {
        const guard = bearerTokenGuard(TOKEN, health, now);
        return (auth = authorization) => {
            const res = new FakeResponse();
            const next = vi.fn();
            guard(request({}, auth === null ? {} : { authorization: auth }), asRes(res), next as NextFunction);
            return { res, next };
        };
    }

    it("lets the right token through without answering", () => {
        const { res, next } = guarded(`Bearer ${TOKEN}`)();
        expect(next).toHaveBeenCalledTimes(1);
        expect(next).toHaveBeenCalledWith();
        expect(res.body).toBeUndefined();
        expect(errors).not.toHaveBeenCalled();
    });

    it.each([
        ["no header", null],
        ["another scheme", `Basic ${TOKEN}`],
        ["the scheme not at the start", `Basic Bearer ${TOKEN}`],
        ["an empty bearer token", "Bearer "],
    ])("answers %s with 401 M_MISSING_TOKEN", (_name, authorization) => {
        const { res, next } = guarded(authorization)();
        expect(next).not.toHaveBeenCalled();
        expect(res.statusCode).toBe(401);
        expect(res.body).toEqual({
            errcode: "M_MISSING_TOKEN",
            error: "Missing 'Authorization: Bearer <token>' header",
        });
    });

    it.each([
        ["a wrong token", "Bearer nope"],
        ["a token of the same length", `Bearer ${"x".repeat(TOKEN.length)}`],
        ["the token with more after it", `Bearer ${TOKEN}x`],
    ])("answers %s with 403 M_UNKNOWN_TOKEN naming the mismatch", (_name, authorization) => {
        const { res, next } = guarded(authorization)();
        expect(next).not.toHaveBeenCalled();
        expect(res.statusCode).toBe(403);
        expect(res.body).toEqual({ errcode: "M_UNKNOWN_TOKEN", error: `Unrecognised token (${TOKEN_MISMATCH})` });
    });

    it("tells the delivery health of every refusal, but logs it once a minute at most", () => {
        let now = 1_000_000;
        const tokenRefused = vi.fn();
        const send = guarded("Bearer nope", { tokenRefused } as unknown as DeliveryHealth, () => now);
        send();
        expect(errors).toHaveBeenCalledTimes(1);
        expect(errors.mock.calls[0]?.[0]).toBe(
            `Refused a batch from the host module (403 M_UNKNOWN_TOKEN): ${TOKEN_MISMATCH}`,
        );
        now += 59_999;
        send(null);
        expect(errors).toHaveBeenCalledTimes(1);
        now += 1; // a minute after the first line
        send(null);
        expect(errors).toHaveBeenCalledTimes(2);
        expect(errors.mock.calls[1]?.[0]).toBe(
            `Refused a batch from the host module (401 M_MISSING_TOKEN: no bearer token): ${TOKEN_MISMATCH}`,
        );
        now += 30_000; // counted from the second line, not the first
        send();
        expect(errors).toHaveBeenCalledTimes(2);
        expect(tokenRefused).toHaveBeenCalledTimes(4);
    });
});

describe("the change handler", () => {
    let metrics: Metrics;
    let fake: FakeProcessor;
    let processor: ChangeProcessor;
    beforeEach(() => {
        vi.spyOn(Logger.prototype, "warn").mockImplementation(() => undefined);
        metrics = new Metrics(new Registry());
        ({ fake, processor } = fakeProcessor());
    });
    afterEach(() => {
        vi.restoreAllMocks();
    });

    async function answer(
        body: unknown,
        options: { json?: boolean; shutdown?: { stopping: boolean }; digest?: DigestAdvice; health?: unknown } = {},
    ) {
        const res = new FakeResponse();
        const handler = changesHandler(
            processor,
            metrics,
            options.shutdown,
            options.digest ?? null,
            options.health as DeliveryHealth | undefined,
        );
        handler(request(body, {}, options.json ?? true), asRes(res), (() => undefined) as NextFunction);
        await res.done;
        return res;
    }

    it("refuses a batch while stopping, closing the connection, before reading it", async () => {
        const res = await answer({ changes: [wireChange(1)] }, { shutdown: { stopping: true } });
        expect(res.statusCode).toBe(503);
        expect(res.headers).toEqual({ Connection: "close" });
        expect(res.body).toEqual({ errcode: "M_UNKNOWN", error: "The appservice is shutting down" });
        expect(fake.calls).toEqual([]);
        expect(await batches(metrics, "rejected")).toBe(0);
    });

    it("takes batches while not stopping", async () => {
        const res = await answer({ changes: [wireChange(1)] }, { shutdown: { stopping: false } });
        expect(res.statusCode).toBe(200);
        expect(res.headers).toEqual({});
    });

    it("rejects a body that is not JSON, counting it", async () => {
        const res = await answer({ changes: [] }, { json: false });
        expect(res.statusCode).toBe(400);
        expect(res.body).toEqual({ errcode: "M_NOT_JSON", error: "Content-Type must be application/json" });
        expect(await batches(metrics, "rejected")).toBe(1);
        expect(fake.calls).toEqual([]);
    });

    it("rejects a bad field with its name and the reason, counting it", async () => {
        const res = await answer({ changes: {} });
        expect(res.statusCode).toBe(400);
        expect(res.body).toEqual({ errcode: "M_BAD_JSON", error: "changes: must be a list", field: "changes" });
        expect(await batches(metrics, "rejected")).toBe(1);
        expect(fake.calls).toEqual([]);
        expect(Logger.prototype.warn).toHaveBeenCalledExactlyOnceWith("Rejected a batch: changes: must be a list");
    });

    it("says a batch is still being posted before the host module would stop waiting, and answers once", async () => {
        let finish!: () => void;
        fake.result = () =>
            new Promise((resolve) => (finish = () => resolve({ acknowledgedThrough: 1, postedHead: null })));
        const res = new FakeResponse();
        const handler = changesHandler(processor, metrics, undefined, DIGEST, undefined, 20);
        handler(request({ changes: [wireChange(1)] }), asRes(res), (() => undefined) as NextFunction);
        await res.done;
        expect(res.statusCode).toBe(503);
        expect(res.body).toMatchObject({ errcode: "M_UNKNOWN", pending: true, digest: DIGEST });
        expect(await batches(metrics, "pending")).toBe(1);
        finish();
        await new Promise((resolve) => setImmediate(resolve));
        expect(res.body).toMatchObject({ pending: true }); // the late result is not a second answer
        expect(await batches(metrics, "ok")).toBe(0);
    });

    it("hands the batch to the processor and answers with its acknowledgement and the digest advice", async () => {
        const head = { seq: 2, hash: "a".repeat(64) };
        const acked = { seq: 1, hash: "b".repeat(64) };
        fake.result = async () => ({ acknowledgedThrough: 3, postedHead: head });
        const batchArrived = vi.fn();
        const res = await answer(
            { changes: [wireChange(2), wireChange(3)], follows: 1, posted_head: head, acked_head: acked },
            { digest: DIGEST, health: { batchArrived }, json: true },
        );
        expect(res.statusCode).toBe(200);
        expect(res.body).toEqual({ acknowledged_through: 3, posted_head: head, digest: DIGEST });
        expect(fake.calls).toHaveLength(1);
        const [changes, follows, postedHead, ackedHead] = fake.calls[0] as [AuditRecord[], unknown, unknown, unknown];
        expect(changes.map((c) => c.seq)).toEqual([2, 3]);
        expect([follows, postedHead, ackedHead]).toEqual([1, head, acked]);
        expect(batchArrived).toHaveBeenCalledWith(null);
        expect(await batches(metrics, "ok")).toBe(1);
    });

    it("tells the delivery health the host module's checkpoint interval", async () => {
        const batchArrived = vi.fn();
        await answer({ changes: [], checkpoint_interval_seconds: 30 }, { health: { batchArrived } });
        expect(batchArrived).toHaveBeenCalledExactlyOnceWith(30);
    });

    it("says how far the export got when it is on", async () => {
        fake.exporting = true;
        fake.exported = 7;
        fake.result = async () => ({ acknowledgedThrough: 9, postedHead: null });
        const res = await answer({ changes: [wireChange(9)] });
        expect(res.body).toEqual({ acknowledged_through: 9, posted_head: null, digest: null, sinks: { jsonl: 7 } });
    });

    it("reports a failed batch's handled prefix and its posted head", async () => {
        const head = { seq: 4, hash: "c".repeat(64) };
        fake.result = async () => Promise.reject(new BatchFailedError("Change seq 5 failed: no", 4, head));
        const res = await answer({ changes: [wireChange(4), wireChange(5)] }, { digest: DIGEST });
        expect(res.statusCode).toBe(503);
        expect(res.body).toEqual({
            errcode: "M_UNKNOWN",
            error: "Change seq 5 failed: no",
            processed_through: 4,
            digest: DIGEST,
            posted_head: head,
        });
        expect(await batches(metrics, "failed")).toBe(1);
        expect(await batches(metrics, "ok")).toBe(0);
    });

    it("leaves the posted head out of a failure that handled nothing", async () => {
        fake.exporting = true;
        fake.exported = 3;
        const head = { seq: 1, hash: "d".repeat(64) };
        fake.result = async () => Promise.reject(new BatchFailedError("nothing", null, head));
        const res = await answer({ changes: [wireChange(4)] });
        expect(res.body).toEqual({
            errcode: "M_UNKNOWN",
            error: "nothing",
            processed_through: null,
            digest: null,
            sinks: { jsonl: 3 },
        });
    });

    it("answers any other failure as one that handled nothing", async () => {
        fake.result = async () => Promise.reject(new Error("a bug"));
        const res = await answer({ changes: [wireChange(4)] });
        expect(res.statusCode).toBe(503);
        expect(res.body).toEqual({ errcode: "M_UNKNOWN", error: "a bug", processed_through: null, digest: null });
    });

    it("writes a sinks_only batch to the export only, and answers without an acknowledgement", async () => {
        fake.exporting = true;
        fake.exported = 5;
        const acked = { seq: 3, hash: "e".repeat(64) };
        const res = await answer(
            { changes: [wireChange(4), wireChange(5)], sinks_only: ["jsonl"], acked_head: acked },
            { digest: DIGEST },
        );
        expect(res.statusCode).toBe(200);
        expect(res.body).toEqual({ sinks: { jsonl: 5 }, digest: DIGEST });
        expect(fake.calls).toEqual([]);
        expect(fake.exportCalls).toHaveLength(1);
        const [changes, ackedHead] = fake.exportCalls[0] as [AuditRecord[], unknown];
        expect(changes.map((c) => c.seq)).toEqual([4, 5]);
        expect(ackedHead).toEqual(acked);
        expect(await batches(metrics, "ok")).toBe(1);
    });

    it.each([
        ["for another sink", ["elsewhere"], true],
        ["for the export while it is off", ["jsonl"], false],
    ])("answers a sinks_only batch %s without writing anything", async (_name, sinksOnly, exporting) => {
        fake.exporting = exporting;
        const res = await answer({ changes: [wireChange(4)], sinks_only: sinksOnly });
        expect(res.statusCode).toBe(200);
        expect(res.body).toEqual({ ...(exporting ? { sinks: { jsonl: null } } : {}), digest: null });
        expect(fake.exportCalls).toEqual([]);
        expect(fake.calls).toEqual([]);
    });

    it("answers a sinks_only batch the export could not write with 503", async () => {
        fake.exporting = true;
        fake.exported = 2;
        fake.exportResult = async () => Promise.reject(new Error("disk full"));
        const res = await answer({ changes: [wireChange(4)], sinks_only: ["jsonl"] });
        expect(res.statusCode).toBe(503);
        expect(res.body).toEqual({ errcode: "M_UNKNOWN", error: "disk full", sinks: { jsonl: 2 }, digest: null });
        expect(await batches(metrics, "failed")).toBe(1);
        expect(await batches(metrics, "ok")).toBe(0);
    });
});

describe("the Matrix error middleware", () => {
    beforeEach(() => {
        vi.spyOn(Logger.prototype, "error").mockImplementation(() => undefined);
    });
    afterEach(() => {
        vi.restoreAllMocks();
    });

    function handle(err: unknown, headersSent = false) {
        const res = new FakeResponse();
        res.headersSent = headersSent;
        const next = vi.fn();
        matrixErrorMiddleware(err, request({}), asRes(res), next as NextFunction);
        return { res, next, answer: res.body === undefined ? undefined : [res.statusCode, res.body] };
    }

    it.each([
        [
            { type: "entity.too.large", limit: 1024 },
            413,
            "M_TOO_LARGE",
            "Request body is larger than the limit of 1024 bytes",
        ],
        [{ type: "entity.parse.failed", status: 400 }, 400, "M_NOT_JSON", "Request body is not valid JSON"],
        [{ type: "encoding.unsupported", status: 415 }, 400, "M_NOT_JSON", "Request body must be UTF-8 JSON"],
        [{ type: "charset.unsupported", status: 415 }, 400, "M_NOT_JSON", "Request body must be UTF-8 JSON"],
        [{ type: "request.aborted", status: 400 }, 400, "M_UNKNOWN", "Incomplete request body"],
        [{ type: "request.size.invalid", status: 400 }, 400, "M_UNKNOWN", "Incomplete request body"],
    ])("maps body-parser's %o", (err, status, errcode, error) => {
        expect(handle(err).answer).toEqual([status, { errcode, error }]);
    });

    it("passes client errors on with their status and message", () => {
        expect(handle(Object.assign(new Error("Bad thing"), { status: 400 })).answer).toEqual([
            400,
            { errcode: "M_UNKNOWN", error: "Bad thing" },
        ]);
        expect(handle(Object.assign(new Error("Gone"), { status: 499 })).answer).toEqual([
            499,
            { errcode: "M_UNKNOWN", error: "Gone" },
        ]);
        expect(handle({ status: 404 }).answer).toEqual([404, { errcode: "M_UNKNOWN", error: "Bad request" }]);
    });

    it.each([
        ["a server error", Object.assign(new Error("boom"), { status: 500 })],
        ["a status below 400", Object.assign(new Error("odd"), { status: 399 })],
        ["a status that is not a number", Object.assign(new Error("odd"), { status: "404" })],
        ["an error without a status", new Error("bug")],
    ])("answers %s with a JSON 500 that names nothing, logging the error", (_name, err) => {
        const { answer, next } = handle(err);
        expect(answer).toEqual([500, { errcode: "M_UNKNOWN", error: "Internal server error" }]);
        expect(next).not.toHaveBeenCalled();
        expect(Logger.prototype.error).toHaveBeenCalledExactlyOnceWith("Unhandled error while serving a request", err);
    });

    it("leaves a response already under way to express", () => {
        const err = { type: "entity.too.large", limit: 1 };
        const { res, next } = handle(err, true);
        expect(next).toHaveBeenCalledExactlyOnceWith(err);
        expect(res.body).toBeUndefined();
    });
});

describe("addIngestRoutes", () => {
    function wire(registry: Registry) {
        const routes: { method: string; path: string; handlers: unknown[] }[] = [];
        const app = {
            post: (path: string, ...handlers: unknown[]) => routes.push({ method: "post", path, handlers }),
            get: (path: string, ...handlers: unknown[]) => routes.push({ method: "get", path, handlers }),
            use: (...handlers: unknown[]) => routes.push({ method: "use", path: "", handlers }),
        };
        const metrics = new Metrics(registry);
        addIngestRoutes({ expressApp: app } as unknown as AppService, fakeProcessor().processor, TOKEN, metrics);
        return { routes, metrics };
    }

    async function getMetrics(registry: Registry) {
        const { routes } = wire(registry);
        const route = routes.find((r) => r.method === "get");
        expect(route?.path).toBe("/metrics");
        const res = new FakeResponse();
        (route?.handlers[0] as (req: Request, res: Response) => void)(request({}), asRes(res));
        await res.done;
        return res;
    }

    it("guards the change path with the token, and ends with the error middleware", () => {
        const { routes } = wire(new Registry());
        expect(routes.map((r) => [r.method, r.path, r.handlers.length])).toEqual([
            ["post", CHANGES_PATH, 2],
            ["get", "/metrics", 1],
            ["use", "", 1],
        ]);
        expect(routes[2]?.handlers[0]).toBe(matrixErrorMiddleware);
        // The first handler is the guard: a request without a token stops there.
        const res = new FakeResponse();
        const next = vi.fn();
        (routes[0]?.handlers[0] as (req: Request, res: Response, next: NextFunction) => void)(
            request({}),
            asRes(res),
            next,
        );
        expect(next).not.toHaveBeenCalled();
        expect(res.statusCode).toBe(401);
    });

    it("serves the metrics in Prometheus' text format", async () => {
        const registry = new Registry();
        const res = await getMetrics(registry);
        expect(res.contentType).toBe(registry.contentType);
        expect(res.sentText).toContain("# TYPE account_data_audit_batches_total counter");
    });

    it("answers 500 when the metrics cannot be collected", async () => {
        const registry = new Registry();
        vi.spyOn(registry, "metrics").mockRejectedValue(new Error("collector broke"));
        const res = await getMetrics(registry);
        expect(res.statusCode).toBe(500);
        expect(res.sentText).toBe("Error: collector broke");
    });
});
