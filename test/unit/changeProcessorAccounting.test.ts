/** ChangeProcessor: what it counts, logs and exports, and what it acknowledges for empty and replayed batches. */
import { Logger } from "matrix-appservice-bridge";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BatchFailedError, ChangeProcessor } from "../../src/ingest/ChangeProcessor.js";
import { PostedLinks } from "../../src/ingest/PostedLinks.js";
import { SendFailedError } from "../../src/matrix/SendErrors.js";
import { Metrics } from "../../src/Metrics.js";
import type { AccountDataChange, AuditRecord, AuditUnit } from "../../src/modules/ModuleHost.js";

const change = (seq: number, extra: Partial<AccountDataChange> = {}) =>
    ({ id: `i${seq}`, seq, ts: 0, userId: `@u${seq}:x`, roomId: null, type: "t", ...extra }) as AccountDataChange;
const gap = (seq: number) =>
    ({
        kind: "gap",
        id: `g${seq}`,
        seq,
        ts: 0,
        lost: 3,
        keys: [{}, {}],
        streamPositions: {},
    }) as unknown as AuditRecord;
const deactivation = (seq: number, deactivated: boolean) =>
    ({ kind: "deactivation", id: `d${seq}`, seq, ts: 0, userId: "@bob:x", deactivated, byAdmin: false }) as AuditRecord;
const checkpoint = (seq: number) => ({ kind: "checkpoint", id: `k${seq}`, seq, ts: 0 }) as AuditRecord;

async function count(metric: { get(): Promise<{ values: { value: number; metricName?: string }[] }> }, name = "") {
    const { values } = await metric.get();
    return values.filter((v) => name === "" || v.metricName === name).reduce((sum, v) => sum + v.value, 0);
}

describe("ChangeProcessor's accounting", () => {
    let logged: { level: string; text: string }[];
    beforeEach(() => {
        logged = [];
        for (const level of ["debug", "info", "warn", "error"] as const) {
            vi.spyOn(Logger.prototype, level).mockImplementation((text: unknown) => {
                logged.push({ level, text: String(text) });
            });
        }
    });
    afterEach(() => {
        vi.restoreAllMocks();
    });

    it("acknowledges an empty batch as nothing", async () => {
        const p = new ChangeProcessor({ dispatch: async () => undefined });
        expect(await p.process([])).toEqual({ acknowledgedThrough: null, postedHead: null });
    });

    it("counts changes, recovered changes, digests and gap notices, and logs what is not a plain change", async () => {
        const metrics = new Metrics(new Registry());
        const handled: AuditUnit[] = [];
        const p = new ChangeProcessor({ dispatch: async (unit) => void handled.push(unit) }, metrics);
        const result = await p.process([
            change(1),
            change(2, { recovered: true }),
            change(3, { digestGroup: 3 }),
            change(4, { digestGroup: 3, recovered: true }),
            change(5, { digestGroup: 3 }),
            gap(6),
            deactivation(7, true),
            deactivation(8, false),
            checkpoint(9),
        ]);
        expect(result.acknowledgedThrough).toBe(9);
        expect(handled.map((u) => [u.kind ?? "change", u.seq])).toEqual([
            ["change", 1],
            ["change", 2],
            ["digest", 3],
            ["gap", 6],
            ["deactivation", 7],
            ["deactivation", 8],
            ["checkpoint", 9],
        ]);
        expect(await count(metrics.changesProcessed)).toBe(2 + 3);
        expect(await count(metrics.changesRecovered)).toBe(2);
        expect(await count(metrics.digests)).toBe(1);
        expect(await count(metrics.gapNotices)).toBe(1);
        expect(await count(metrics.lastSeq)).toBe(9);
        expect(await count(metrics.changesFailed)).toBe(0);
        const byText = (a: { text: string }, b: { text: string }) => a.text.localeCompare(b.text);
        expect(logged.sort(byText)).toEqual(
            [
                { level: "debug", text: "Checkpoint (seq 9)" },
                { level: "debug", text: "Digest of 3 changes (seq 3-5)" },
                {
                    level: "warn",
                    text:
                        "Gap notice (seq 6): up to 3 account-data values of 2 keys were overwritten before they " +
                        "could be recorded",
                },
                { level: "info", text: "@bob:x was deactivated (seq 7)" },
                { level: "info", text: "@bob:x was reactivated (seq 8)" },
                { level: "info", text: "Recovered change (seq 2): @u2:x t" },
            ].sort(byText),
        );
    });

    it("observes how long each change took, in seconds", async () => {
        const metrics = new Metrics(new Registry());
        let clock = 10_000;
        vi.spyOn(performance, "now").mockImplementation(() => clock);
        const p = new ChangeProcessor({ dispatch: async () => void (clock += 250) }, metrics);
        await p.process([change(1)]);
        expect(await count(metrics.changeSeconds, "account_data_audit_change_seconds_sum")).toBe(0.25);
        expect(await count(metrics.changeSeconds, "account_data_audit_change_seconds_count")).toBe(1);
    });

    it("logs a failed change with its id, seq, reason and the admin's hint, and counts it", async () => {
        const metrics = new Metrics(new Registry());
        const p = new ChangeProcessor(
            {
                dispatch: async (unit) => {
                    if (unit.seq === 1) throw new SendFailedError("not joined", "Invite the bot to the room");
                    throw new Error("no");
                },
            },
            metrics,
        );
        await expect(p.process([change(1)])).rejects.toThrow("Change seq 1 failed: not joined");
        await expect(p.process([change(2)])).rejects.toThrow("Change seq 2 failed: no");
        expect(logged.filter((l) => l.level === "error").map((l) => l.text)).toEqual([
            "Change i1 (seq 1) failed: not joined. Invite the bot to the room",
            "Change i2 (seq 2) failed: no.",
        ]);
        expect(await count(metrics.changesFailed)).toBe(2);
    });

    it("reports seq 0 as handled when only what comes after it failed", async () => {
        const p = new ChangeProcessor({
            dispatch: async (unit) => {
                if (unit.seq === 1) throw new Error("no");
            },
        });
        const err = (await p.process([change(0), change(1)]).catch((e: unknown) => e)) as BatchFailedError;
        expect(err).toBeInstanceOf(BatchFailedError);
        expect(err.processedThrough).toBe(0);
    });

    it("remembers the last 20 000 handled ids: a replay of older ones is handled again", async () => {
        const handled: number[] = [];
        const p = new ChangeProcessor({ dispatch: async (unit) => void handled.push(unit.seq) });
        const all = Array.from({ length: 20_001 }, (_, i) => change(i + 1, { userId: "@a:x" }));
        expect((await p.process(all)).acknowledgedThrough).toBe(20_001);
        handled.length = 0;
        await p.process([change(2)]); // remembered
        await p.process([change(1)]); // the oldest: forgotten
        await p.process([change(20_001)]);
        expect(handled).toEqual([1]);
    });
});

describe("ChangeProcessor with the JSONL export", () => {
    beforeEach(() => {
        vi.spyOn(Logger.prototype, "error").mockImplementation(() => undefined);
    });
    afterEach(() => {
        vi.restoreAllMocks();
    });

    function sink(write: () => Promise<number | null>) {
        const calls: unknown[][] = [];
        return {
            calls,
            sink: {
                write: (...args: unknown[]) => {
                    calls.push(args);
                    return write();
                },
                handledThrough: () => 4,
            },
        };
    }

    it("writes a sinks_only batch to the export alone, as a batch of its own", async () => {
        const dispatch = vi.fn();
        const { sink: fake, calls } = sink(async () => 5);
        const p = new ChangeProcessor({ dispatch }, undefined, 8, 1_000, null, null, fake);
        const acked = { seq: 3, hash: "a".repeat(64) };
        expect(await p.exportOnly([change(4), change(5)], acked)).toBe(5);
        expect(calls).toEqual([[[change(4), change(5)], false, acked]]);
        expect(dispatch).not.toHaveBeenCalled();
        expect(p.exporting).toBe(true);
        expect(p.exportedThrough()).toBe(4);
    });

    it("has nothing to export to without a sink", async () => {
        const p = new ChangeProcessor({ dispatch: async () => undefined });
        expect(await p.exportOnly([change(4)], null)).toBeNull();
        expect(p.exporting).toBe(false);
        expect(p.exportedThrough()).toBeNull();
    });

    it("fails the whole batch, acknowledging nothing, when the export could not write it", async () => {
        const metrics = new Metrics(new Registry());
        const { sink: fake } = sink(async () => Promise.reject(new Error("disk full")));
        const p = new ChangeProcessor({ dispatch: async () => undefined }, metrics, 8, 1_000, null, null, fake);
        const err = await p.process([change(1), change(2)]).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BatchFailedError);
        expect((err as BatchFailedError).message).toBe("disk full");
        expect((err as BatchFailedError).processedThrough).toBeNull();
        expect(Logger.prototype.error).toHaveBeenCalledWith("disk full; the host module resends the batch");
        expect(await count(metrics.changesFailed)).toBe(1);
    });
});

describe("ChangeProcessor with posted links", () => {
    const hash = (seq: number) => seq.toString(16).padStart(64, "0");
    const ref = (seq: number) => ({ seq, hash: hash(seq) });
    const chained = (seq: number) => change(seq, { chain: { prevHash: hash(seq - 1), hash: hash(seq) } });

    it("continues a pipelined batch from the plan in flight, and a batch sent on its own from the host's head", async () => {
        const sent: AuditUnit[] = [];
        const links = new PostedLinks(() => true);
        const p = new ChangeProcessor({ dispatch: async (u) => void sent.push(u) }, undefined, 8, 1_000, links);
        expect(await p.process([chained(2), chained(3)], null, ref(1), ref(1))).toEqual({
            acknowledgedThrough: 3,
            postedHead: ref(3),
        });
        // Sent behind seq 3 before its answer: the host's head (still 1) is stale, the plan continues from 3.
        expect(await p.process([chained(4)], 3, ref(1), ref(1))).toEqual({
            acknowledgedThrough: 4,
            postedHead: ref(4),
        });
        // A retry on its own plans from the head the host module gives.
        expect(await p.process([chained(6)], null, ref(4), ref(5))).toEqual({
            acknowledgedThrough: 6,
            postedHead: ref(6),
        });
        expect(sent.map((u) => (u as AccountDataChange).prevPosted)).toEqual([ref(1), ref(2), ref(3), ref(4)]);
    });

    it("answers an empty batch after a failed one with the host's head, not the failed batch's plan", async () => {
        const links = new PostedLinks(() => true);
        const p = new ChangeProcessor(
            {
                dispatch: async () => {
                    throw new Error("no");
                },
            },
            undefined,
            8,
            1_000,
            links,
        );
        const err = (await p.process([chained(1)], null, null, null).catch((e: unknown) => e)) as BatchFailedError;
        expect([err.processedThrough, err.postedHead]).toEqual([null, null]);
        expect(await p.process([], null, null, null)).toEqual({ acknowledgedThrough: null, postedHead: null });
    });
});
