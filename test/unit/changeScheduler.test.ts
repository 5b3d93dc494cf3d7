import { describe, expect, it } from "vitest";
import { ChangeScheduler } from "../../src/ingest/ChangeScheduler.js";
import type { AccountDataChange, AuditUnit, GapRecord } from "../../src/modules/ModuleHost.js";

const change = (seq: number, user: string) =>
    ({ id: `i${seq}`, seq, ts: 0, userId: user, roomId: null, type: "t" }) as AccountDataChange;

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A scheduler whose units run until the test releases them by seq; `started` lists their seqs in start order. */
function heldScheduler(limit: number) {
    const started: number[] = [];
    const release = new Map<number, () => void>();
    const scheduler = new ChangeScheduler(limit, (c) => {
        started.push(c.seq);
        return new Promise<void>((resolve) => release.set(c.seq, resolve));
    });
    return { scheduler, started, release };
}

describe("ChangeScheduler", () => {
    it("with one at a time, runs changes in exact seq order, even when a user has several in a row", async () => {
        const order: number[] = [];
        const scheduler = new ChangeScheduler(1, async (c) => {
            await tick();
            order.push(c.seq);
        });
        // A bad mix for first-come-first-served: @a's second change waits on its first while @b's is queued.
        const users = ["@a:x", "@a:x", "@b:x", "@a:x", "@c:x", "@c:x", "@b:x"];
        await Promise.all(users.map((u, i) => scheduler.submit(change(i + 1, u))));
        expect(order).toEqual([1, 2, 3, 4, 5, 6, 7]);
    });

    it("keeps exact seq order with one at a time over many users (random mix)", async () => {
        const order: number[] = [];
        const scheduler = new ChangeScheduler(1, async (c) => {
            if (c.seq % 3 === 0) await tick();
            order.push(c.seq);
        });
        let seed = 7;
        const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
        const all = Array.from({ length: 500 }, (_, i) => change(i + 1, `@u${Math.floor(random() * 7)}:x`));
        await Promise.all(all.map((c) => scheduler.submit(c)));
        expect(order).toEqual(all.map((c) => c.seq));
    });

    it("overlaps users up to the limit, one change per user at a time, lowest free seq first", async () => {
        const { scheduler, started, release } = heldScheduler(2);
        const done = [
            change(1, "@a:x"),
            change(2, "@a:x"),
            change(3, "@b:x"),
            change(4, "@c:x"),
            change(5, "@a:x"),
        ].map((c) => scheduler.submit(c));
        expect(started).toEqual([1, 3]); // 2 waits for @a's 1
        release.get(3)?.();
        await tick();
        expect(started).toEqual([1, 3, 4]);
        release.get(1)?.();
        await tick();
        expect(started).toEqual([1, 3, 4, 2]);
        release.get(4)?.();
        release.get(2)?.();
        await tick();
        expect(started).toEqual([1, 3, 4, 2, 5]);
        release.get(5)?.();
        await Promise.all(done);
    });

    it("fails a user's waiting changes with the error of the one that failed, and no one else's", async () => {
        const ran: number[] = [];
        const scheduler = new ChangeScheduler(4, async (c) => {
            await tick();
            if (c.seq === 1) throw new Error("refused");
            ran.push(c.seq);
        });
        const results = await Promise.allSettled(
            [change(1, "@a:x"), change(2, "@b:x"), change(3, "@a:x")].map((c) => scheduler.submit(c)),
        );
        expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "rejected"]);
        expect((results[2] as PromiseRejectedResult).reason).toEqual(new Error("refused"));
        expect(ran).toEqual([2]);
        // Submitted again (the retry), it runs.
        await scheduler.submit(change(3, "@a:x"));
        expect(ran).toEqual([2, 3]);
    });

    it("runs a gap notice alone: after everything before it, before anything after it", async () => {
        const events: string[] = [];
        const scheduler = new ChangeScheduler(4, async (c) => {
            events.push(`start ${c.seq}`);
            await tick();
            events.push(`end ${c.seq}`);
        });
        const gap = { kind: "gap", id: "g", seq: 3, ts: 0, lost: 1, keys: [] } as unknown as GapRecord;
        await Promise.all(
            [change(1, "@a:x"), change(2, "@b:x"), gap, change(4, "@a:x"), change(5, "@c:x")].map((c) =>
                scheduler.submit(c),
            ),
        );
        const gapStart = events.indexOf("start 3");
        expect(events.slice(gapStart, gapStart + 2)).toEqual(["start 3", "end 3"]);
        expect(events.slice(0, gapStart).sort()).toEqual(["end 1", "end 2", "start 1", "start 2"]);
    });
});

const digest = (seq: number, users: string[]) =>
    ({
        kind: "digest",
        id: `d${seq}`,
        seq,
        lastSeq: seq,
        changes: users.map((u, i) => change(seq + i, u)),
    }) as unknown as AuditUnit;

describe("ChangeScheduler with digests", () => {
    it("runs digests of different users side by side, and one sharing a user after it", async () => {
        const { scheduler, started, release } = heldScheduler(4);
        const done = [
            digest(1, ["@a:x", "@b:x"]),
            digest(10, ["@c:x", "@d:x"]),
            change(20, "@b:x"),
            digest(30, ["@d:x", "@e:x"]),
            change(40, "@f:x"),
        ].map((c) => scheduler.submit(c));
        expect(started).toEqual([1, 10, 40]);
        release.get(10)?.();
        await tick();
        expect(started).toEqual([1, 10, 40, 30]);
        release.get(1)?.();
        await tick();
        expect(started).toEqual([1, 10, 40, 30, 20]);
        for (const seq of [20, 30, 40]) release.get(seq)?.();
        await Promise.all(done);
    });

    it("fails what waits behind a failed digest, through every user it shares, also behind a gap notice", async () => {
        const ran: number[] = [];
        const release = new Map<number, () => void>();
        const scheduler = new ChangeScheduler(4, (c) => {
            ran.push(c.seq);
            if (c.seq === 1) return Promise.reject(new Error("refused"));
            return new Promise<void>((resolve) => release.set(c.seq, resolve));
        });
        const gap = { kind: "gap", id: "g", seq: 50, ts: 0, lost: 1, keys: [] } as unknown as AuditUnit;
        const results = Promise.allSettled(
            [
                change(0, "@c:x"), // runs, and holds @c
                digest(1, ["@a:x", "@b:x"]), // fails
                digest(10, ["@b:x", "@c:x"]), // behind it (@b)
                change(20, "@c:x"), // behind 10 (@c)
                change(30, "@d:x"), // unrelated
                gap,
                change(60, "@c:x"), // behind 20, past the gap
                change(70, "@e:x"),
            ].map((c) => scheduler.submit(c)),
        );
        await tick();
        release.get(0)?.();
        release.get(30)?.();
        await tick();
        release.get(50)?.();
        await tick();
        release.get(70)?.();
        const status = (await results).map((r) => r.status);
        expect(status).toEqual([
            "fulfilled",
            "rejected",
            "rejected",
            "rejected",
            "fulfilled",
            "fulfilled",
            "rejected",
            "fulfilled",
        ]);
        expect(ran).toEqual([0, 1, 30, 50, 70]);
    });

    it("keeps every user's order, the limit and gap notices alone, over a random mix", async () => {
        let seed = 11;
        const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
        const user = () => `@u${Math.floor(random() * 9)}:x`;
        const units: AuditUnit[] = [];
        for (let seq = 1; seq <= 600; seq++) {
            const r = random();
            if (r < 0.02)
                units.push({ kind: "gap", id: `g${seq}`, seq, ts: 0, lost: 1, keys: [] } as unknown as AuditUnit);
            else if (r < 0.4) units.push(digest(seq, [user(), user(), user()]));
            else units.push(change(seq, user()));
        }
        const keysOf = (u: AuditUnit) =>
            u.kind === "gap" || u.kind === "checkpoint"
                ? []
                : u.kind === "digest"
                  ? [...new Set(u.changes.map((c) => c.userId))]
                  : [u.userId];
        const lastByUser = new Map<string, number>();
        const running = new Set<AuditUnit>();
        let maxRunning = 0;
        const scheduler = new ChangeScheduler(5, async (u) => {
            expect(running.size === 0 || u.kind !== "gap").toBe(true);
            expect([...running].some((r) => r.kind === "gap")).toBe(false);
            for (const key of keysOf(u)) {
                expect(lastByUser.get(key) ?? 0).toBeLessThan(u.seq);
                lastByUser.set(key, u.seq);
                expect([...running].some((r) => keysOf(r).includes(key))).toBe(false);
            }
            running.add(u);
            maxRunning = Math.max(maxRunning, running.size);
            for (let i = Math.floor(random() * 3); i > 0; i--) await tick();
            running.delete(u);
        });
        // Submitted in batches, as the processor does.
        const all: Promise<void>[] = [];
        for (let i = 0; i < units.length; i += 50) {
            all.push(...units.slice(i, i + 50).map((u) => scheduler.submit(u)));
            await tick();
        }
        await Promise.all(all);
        expect(maxRunning).toBe(5);
    });
});
