import type { AddressInfo } from "node:net";
import { AppService } from "matrix-appservice-bridge";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SendFailedError } from "../../src/matrix/SendErrors.js";
import { BatchFailedError, ChangeProcessor } from "../../src/ingest/ChangeProcessor.js";
import { addIngestRoutes } from "../../src/ingest/IngestRoute.js";
import { CHANGES_PATH } from "../../src/ingest/Protocol.js";
import { pythonDumps } from "../../src/json/PythonJson.js";
import { Metrics } from "../../src/Metrics.js";
import type { AccountDataChange, AuditUnit } from "../../src/modules/ModuleHost.js";

const TOKEN = "hs-token-for-tests";
const MAX_BODY = 64 * 1024;

function wireChange(seq: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return {
        id: `id${seq}`,
        seq,
        ts: 1_700_000_000_000,
        user_id: "@alice:example.org",
        room_id: null,
        type: "m.test",
        content: '{"n":1.0}',
        ...overrides,
    };
}

describe("the change endpoint", () => {
    let appService: AppService;
    let url: string;
    let dispatched: AuditUnit[];
    let failOn: Set<number>;
    let shutdown: { stopping: boolean };

    beforeEach(async () => {
        dispatched = [];
        failOn = new Set();
        const metrics = new Metrics(new Registry());
        const processor = new ChangeProcessor(
            {
                dispatch: async (change) => {
                    if (failOn.has(change.seq)) throw new Error(`cannot send ${change.seq}`);
                    dispatched.push(change);
                },
            },
            metrics,
        );
        appService = new AppService({ homeserverToken: TOKEN, httpMaxSizeBytes: MAX_BODY });
        shutdown = { stopping: false };
        addIngestRoutes(appService, processor, TOKEN, metrics, shutdown);
        await appService.listen(0, "127.0.0.1", 10);
        const address = (appService as unknown as { server: { address(): AddressInfo } }).server.address();
        url = `http://127.0.0.1:${address.port}${CHANGES_PATH}`;
    });
    afterEach(async () => {
        await appService.close();
    });

    async function post(body: string, headers: Record<string, string> = { Authorization: `Bearer ${TOKEN}` }) {
        const res = await fetch(url, {
            method: "POST",
            headers: { "Content-Type": "application/json", ...headers },
            body,
        });
        return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    }

    it("handles a batch in order and acknowledges its last seq", async () => {
        const res = await post(
            JSON.stringify({ changes: [wireChange(4), wireChange(7, { room_id: "!r:example.org" })] }),
        );
        expect(res).toEqual({ status: 200, json: { acknowledged_through: 7, posted_head: null, digest: null } });
        expect((dispatched as AccountDataChange[]).map((c) => [c.seq, c.roomId, pythonDumps(c.content)])).toEqual([
            [4, null, '{"n": 1.0}'],
            [7, "!r:example.org", '{"n": 1.0}'],
        ]);
    });

    it("takes an account-data type longer than an event type may be (Synapse stores it)", async () => {
        const type = `org.example.${"é".repeat(300)}`;
        expect(await post(JSON.stringify({ changes: [wireChange(1, { type })] }))).toEqual({
            status: 200,
            json: { acknowledged_through: 1, posted_head: null, digest: null },
        });
        expect((dispatched as AccountDataChange[]).map((c) => c.type)).toEqual([type]);
    });

    it("acknowledges an empty batch", async () => {
        expect(await post('{"changes": []}')).toEqual({
            status: 200,
            json: { acknowledged_through: null, posted_head: null, digest: null },
        });
    });

    it.each([
        ["no Authorization header", {}, 401, "M_MISSING_TOKEN"],
        ["a non-bearer header", { Authorization: `Basic ${TOKEN}` }, 401, "M_MISSING_TOKEN"],
        ["a wrong token", { Authorization: "Bearer nope" }, 403, "M_UNKNOWN_TOKEN"],
        [
            "a token of the right length but wrong",
            { Authorization: `Bearer ${"x".repeat(TOKEN.length)}` },
            403,
            "M_UNKNOWN_TOKEN",
        ],
    ])("rejects %s", async (_name, headers, status, errcode) => {
        const res = await post(JSON.stringify({ changes: [wireChange(1)] }), headers as Record<string, string>);
        expect(res.status).toBe(status);
        expect(res.json.errcode).toBe(errcode);
        expect(dispatched).toEqual([]);
    });

    it("answers malformed JSON with 400 M_NOT_JSON", async () => {
        const res = await post('{"changes": [');
        expect(res).toMatchObject({ status: 400, json: { errcode: "M_NOT_JSON" } });
    });

    it("answers a non-JSON content type with 400 M_NOT_JSON", async () => {
        const res = await fetch(url, {
            method: "POST",
            headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "text/plain" },
            body: "{}",
        });
        expect(res.status).toBe(400);
        expect(((await res.json()) as { errcode: string }).errcode).toBe("M_NOT_JSON");
    });

    it("answers an oversize body with 413 M_TOO_LARGE", async () => {
        const res = await post(
            JSON.stringify({ changes: [wireChange(1, { content: `{"x":"${"a".repeat(MAX_BODY)}"}` })] }),
        );
        expect(res).toMatchObject({ status: 413, json: { errcode: "M_TOO_LARGE" } });
    });

    it.each([
        [{ changes: {} }, "changes"],
        [[], "body"],
        [{ changes: [wireChange(1, { id: "" })] }, "changes[0].id"],
        [{ changes: [wireChange(1, { id: "has space" })] }, "changes[0].id"],
        [{ changes: [wireChange(-1)] }, "changes[0].seq"],
        [{ changes: [wireChange(1.5)] }, "changes[0].seq"],
        [{ changes: [wireChange(1, { ts: "now" })] }, "changes[0].ts"],
        [{ changes: [wireChange(1, { user_id: "alice" })] }, "changes[0].user_id"],
        [{ changes: [wireChange(1, { room_id: "#alias:example.org" })] }, "changes[0].room_id"],
        [{ changes: [wireChange(1, { room_id: 5 })] }, "changes[0].room_id"],
        [{ changes: [wireChange(1, { type: 5 })] }, "changes[0].type"],
        [{ changes: [wireChange(1, { content: { n: 1 } })] }, "changes[0].content"],
        [{ changes: [wireChange(2), wireChange(3), wireChange(3)] }, "changes[2].seq"],
        [{ changes: [wireChange(2)], follows: "1" }, "follows"],
        [{ changes: [wireChange(2)], follows: 2 }, "follows"],
        [{ changes: [wireChange(2)], follows: -1 }, "follows"],
    ])("answers an invalid field with 400 M_BAD_JSON naming it (case %#)", async (body, field) => {
        const res = await post(JSON.stringify(body));
        expect(res.status).toBe(400);
        expect(res.json).toMatchObject({ errcode: "M_BAD_JSON", field });
        expect(String(res.json.error)).toContain(field);
        expect(dispatched).toEqual([]);
    });

    it("takes every ID, type and content Synapse stores, and leaves content it cannot read to quarantine", async () => {
        const body = {
            changes: [
                wireChange(1, { user_id: `@${"a".repeat(300)} legacy:example.org`, type: "" }),
                wireChange(2, { room_id: `!a b\n☃${"r".repeat(300)}:example.org`, type: "t".repeat(20_000) }),
                wireChange(3, { content: "[1]" }),
                wireChange(4, { content: "{" }),
            ],
        };
        const res = await post(JSON.stringify(body));
        expect(res.status).toBe(200);
        expect(dispatched.map((c) => c.seq)).toEqual([1, 2, 3, 4]);
        const errors = dispatched.map((c) => (c as AccountDataChange).contentError);
        expect(errors[0]).toBeUndefined();
        expect(errors[1]).toBeUndefined();
        expect(errors[2]).toMatch(/not the JSON text of an object/);
        expect(errors[3]).toMatch(/not valid JSON/);
    });

    it("takes a change the host module sent without its content (too large to deliver) for quarantine", async () => {
        const res = await post(
            JSON.stringify({
                changes: [wireChange(1, { content: null, content_omitted: { size: 99_000_000, reason: "too_large" } })],
            }),
        );
        expect(res.status).toBe(200);
        expect(dispatched[0]).toMatchObject({
            contentSize: 99_000_000,
            contentError: expect.stringMatching(/too large to deliver/),
        });
        expect((await post(JSON.stringify({ changes: [wireChange(2, { content: null })] }))).status).toBe(400);
        // Over the host module's max_content_bytes: said so, with the setting to look at.
        const overCap = { content: null, content_omitted: { size: 2_000_000, reason: "over_cap" } };
        expect((await post(JSON.stringify({ changes: [wireChange(3, overCap)] }))).status).toBe(200);
        expect(dispatched[1]).toMatchObject({
            contentSize: 2_000_000,
            contentError: expect.stringMatching(/larger than the host module delivers .*max_content_bytes/),
        });
    });

    it("fails a batch it cannot finish with 503 and how far it got, and the retry resumes", async () => {
        failOn.add(3);
        const batch = JSON.stringify({ changes: [wireChange(1), wireChange(2), wireChange(3), wireChange(4)] });
        const res = await post(batch);
        expect(res).toMatchObject({ status: 503, json: { errcode: "M_UNKNOWN", processed_through: 2 } });
        expect(dispatched.map((c) => c.seq)).toEqual([1, 2]);

        failOn.clear();
        expect((await post(batch)).json).toEqual({ acknowledged_through: 4, posted_head: null, digest: null });
        // Changes already handled in this process are not handled again.
        expect(dispatched.map((c) => c.seq)).toEqual([1, 2, 3, 4]);
    });

    it("starts a batch that overtook the one it follows only after that one", async () => {
        const later = post(JSON.stringify({ changes: [wireChange(3), wireChange(4)], follows: 2 }));
        await new Promise((resolve) => setTimeout(resolve, 50)); // it has arrived, and waits
        expect(dispatched).toEqual([]);
        const earlier = await post(JSON.stringify({ changes: [wireChange(1), wireChange(2)] }));
        expect(earlier.json).toEqual({ acknowledged_through: 2, posted_head: null, digest: null });
        expect((await later).json).toEqual({ acknowledged_through: 4, posted_head: null, digest: null });
        expect(dispatched.map((c) => c.seq)).toEqual([1, 2, 3, 4]);
    });

    it("refuses new batches with 503 while shutting down", async () => {
        shutdown.stopping = true;
        const res = await post(JSON.stringify({ changes: [wireChange(1)] }));
        expect(res).toMatchObject({ status: 503, json: { errcode: "M_UNKNOWN" } });
        expect(dispatched).toEqual([]);
    });

    it("serves Prometheus metrics", async () => {
        await post(JSON.stringify({ changes: [wireChange(1)] }));
        const text = await (await fetch(url.replace(CHANGES_PATH, "/metrics"))).text();
        expect(text).toContain('account_data_audit_batches_total{result="ok"} 1');
        expect(text).toContain("account_data_audit_changes_processed_total 1");
    });
});

describe("ChangeProcessor", () => {
    it("keeps one user's order across concurrent batches", async () => {
        const order: number[] = [];
        const processor = new ChangeProcessor({
            dispatch: async (change) => {
                await new Promise((resolve) => setTimeout(resolve, change.seq === 1 ? 20 : 0));
                order.push(change.seq);
            },
        });
        const change = (seq: number) =>
            ({ id: `i${seq}`, seq, ts: 0, userId: "@a:b", roomId: null, type: "t" }) as AccountDataChange;
        await Promise.all([
            processor.process([change(1)]),
            processor.process([change(2)]),
            processor.process([change(3)]),
        ]);
        expect(order).toEqual([1, 2, 3]);
    });

    it("reports BatchFailedError with null when nothing was processed", async () => {
        const processor = new ChangeProcessor({ dispatch: async () => Promise.reject(new Error("x")) });
        const err = await processor
            .process([{ id: "a", seq: 5, ts: 0, userId: "@a:b", roomId: null, type: "t" } as AccountDataChange])
            .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BatchFailedError);
        expect((err as BatchFailedError).processedThrough).toBeNull();
    });

    const userChange = (seq: number, user: string) =>
        ({ id: `i${seq}`, seq, ts: 0, userId: user, roomId: null, type: "t" }) as AccountDataChange;

    it("does not acknowledge a batch that follows one which failed fast", async () => {
        const handled: number[] = [];
        const processor = new ChangeProcessor({
            dispatch: async (change) => {
                if (change.seq === 1) throw new SendFailedError("homeserver down");
                handled.push(change.seq);
            },
        });
        // Batch 1 fails and is answered before batch 2 (sent behind it, same user) arrives.
        const first = await processor.process([userChange(1, "@alice:x")]).catch((e: unknown) => e);
        expect(first).toBeInstanceOf(BatchFailedError);
        const second = await processor.process([userChange(2, "@alice:x")], 1).catch((e: unknown) => e);
        expect(second).toBeInstanceOf(BatchFailedError);
        expect((second as BatchFailedError).processedThrough).toBeNull();
        expect(handled).toEqual([]);
        // So does a batch behind that one; the host module's resend (no `follows`) goes through, then the rest.
        await expect(processor.process([userChange(3, "@alice:x")], 2)).rejects.toBeInstanceOf(BatchFailedError);
        const retry = new ChangeProcessor({ dispatch: async (change) => void handled.push(change.seq) });
        expect((await retry.process([userChange(1, "@alice:x")])).acknowledgedThrough).toBe(1);
        expect(
            (await processor.process([userChange(2, "@alice:x"), userChange(3, "@alice:x")])).acknowledgedThrough,
        ).toBe(3);
        expect(handled).toEqual([1, 2, 3]);
    });

    it("overlaps different users but keeps each user's changes in order", async () => {
        const events: string[] = [];
        let inFlight = 0;
        let maxSeen = 0;
        const processor = new ChangeProcessor(
            {
                dispatch: async (change) => {
                    inFlight++;
                    maxSeen = Math.max(maxSeen, inFlight);
                    events.push(`start ${change.seq}`);
                    // Alice's first change is slow: Bob's must not wait for it, Alice's second must.
                    await new Promise((resolve) => setTimeout(resolve, change.seq === 1 ? 30 : 1));
                    events.push(`end ${change.seq}`);
                    inFlight--;
                },
            },
            undefined,
            4,
        );
        const result = await processor.process([
            userChange(1, "@alice:x"),
            userChange(2, "@bob:x"),
            userChange(3, "@alice:x"),
            userChange(4, "@bob:x"),
        ]);
        expect(result.acknowledgedThrough).toBe(4);
        expect(events.indexOf("end 4")).toBeLessThan(events.indexOf("end 1"));
        expect(events.indexOf("start 3")).toBeGreaterThan(events.indexOf("end 1"));
        expect(maxSeen).toBeGreaterThan(1);
        expect(maxSeen).toBeLessThanOrEqual(4);
    });

    it("starts the next batch at once but acknowledges batches in order", async () => {
        const events: string[] = [];
        let releaseSlow: () => void = () => undefined;
        const slow = new Promise<void>((resolve) => (releaseSlow = resolve));
        const processor = new ChangeProcessor(
            {
                dispatch: async (change) => {
                    events.push(`start ${change.seq}`);
                    if (change.seq === 1) await slow;
                    events.push(`end ${change.seq}`);
                },
            },
            undefined,
            4,
        );
        const first = processor.process([userChange(1, "@a:x")]);
        const second = processor.process([userChange(2, "@b:x")]).then((r) => {
            events.push("ack 2");
            return r;
        });
        await vi.waitFor(() => expect(events).toContain("end 2"));
        expect(events).not.toContain("ack 2"); // batch 2 is done, but batch 1 is not acknowledged yet
        releaseSlow();
        expect(await first).toEqual({ acknowledgedThrough: 1, postedHead: null });
        expect(await second).toEqual({ acknowledgedThrough: 2, postedHead: null });
        expect(events).toEqual(["start 1", "start 2", "end 2", "end 1", "ack 2"]);
        await processor.idle();
    });

    it("fails a batch behind a failed one, reporting the earlier batch's handled prefix", async () => {
        const handled: number[] = [];
        const processor = new ChangeProcessor({
            dispatch: async (change) => {
                if (change.seq === 2) throw new Error("no");
                handled.push(change.seq);
            },
        });
        const first = processor.process([userChange(1, "@a:x"), userChange(2, "@b:x")]).catch((e: unknown) => e);
        const second = processor.process([userChange(3, "@c:x"), userChange(4, "@b:x")]).catch((e: unknown) => e);
        expect(((await first) as BatchFailedError).processedThrough).toBe(1);
        const err = (await second) as BatchFailedError;
        expect(err).toBeInstanceOf(BatchFailedError);
        expect(err.processedThrough).toBe(1);
        expect(err.message).toMatch(/seq 2 failed/);
        expect(handled.sort()).toEqual([1, 3]); // Bob's seq 4, in the later batch, waited for his failed seq 2
        // The retry starts afresh: nothing of the failure is left behind.
        expect(await processor.process([userChange(4, "@b:x")])).toEqual({ acknowledgedThrough: 4, postedHead: null });
    });

    it("starts batches in the order `follows` gives, whatever order they arrive in", async () => {
        const handled: number[] = [];
        const processor = new ChangeProcessor({ dispatch: async (c) => void handled.push(c.seq) }, undefined, 1);
        const third = processor.process([userChange(5, "@c:x")], 4);
        const second = processor.process([userChange(3, "@b:x"), userChange(4, "@a:x")], 2);
        await new Promise((resolve) => setImmediate(resolve));
        expect(handled).toEqual([]);
        const first = processor.process([userChange(1, "@a:x"), userChange(2, "@b:x")]);
        expect(await Promise.all([first, second, third])).toEqual([
            { acknowledgedThrough: 2, postedHead: null },
            { acknowledgedThrough: 4, postedHead: null },
            { acknowledgedThrough: 5, postedHead: null },
        ]);
        expect(handled).toEqual([1, 2, 3, 4, 5]);
    });

    it("fails a batch whose predecessor never comes, having handled none of it", async () => {
        const handled: number[] = [];
        const processor = new ChangeProcessor({ dispatch: async (c) => void handled.push(c.seq) }, undefined, 8, 20);
        const err = await processor.process([userChange(5, "@a:x")], 4).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BatchFailedError);
        expect((err as BatchFailedError).processedThrough).toBeNull();
        expect(handled).toEqual([]);
        // Resent on its own (as the host module does after a failure), it goes through.
        expect(await processor.process([userChange(5, "@a:x")])).toEqual({ acknowledgedThrough: 5, postedHead: null });
    });

    it("never exceeds max in flight", async () => {
        let inFlight = 0;
        let maxSeen = 0;
        const processor = new ChangeProcessor(
            {
                dispatch: async () => {
                    maxSeen = Math.max(maxSeen, ++inFlight);
                    await new Promise((resolve) => setTimeout(resolve, 2));
                    inFlight--;
                },
            },
            undefined,
            3,
        );
        await processor.process(Array.from({ length: 20 }, (_, i) => userChange(i + 1, `@u${i}:x`)));
        expect(maxSeen).toBe(3);
    });

    it("after a failure, stops that user's later changes and reports the handled prefix", async () => {
        const handled: number[] = [];
        const processor = new ChangeProcessor(
            {
                dispatch: async (change) => {
                    if (change.seq === 2) throw new Error("no");
                    handled.push(change.seq);
                },
            },
            undefined,
            4,
        );
        const err = await processor
            .process([userChange(1, "@a:x"), userChange(2, "@b:x"), userChange(3, "@a:x"), userChange(4, "@b:x")])
            .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BatchFailedError);
        expect((err as BatchFailedError).processedThrough).toBe(1);
        expect(handled.sort()).toEqual([1, 3]); // Bob's seq 4 waited for his failed seq 2
    });
});
