/**
 * ChangeProcessor reads contents when it records them (ContentReader), a few megabytes at a time (ContentBudget):
 * two users' megabyte contents take turns, another user's small change passes them, and modules get the content.
 */
import { describe, expect, it } from "vitest";
import { ChangeProcessor } from "../../src/ingest/ChangeProcessor.js";
import { UNREAD_CONTENT } from "../../src/ingest/ContentReader.js";
import { pythonDumpsContent } from "../../src/json/LazyContent.js";
import type { AccountDataChange, AuditUnit } from "../../src/modules/ModuleHost.js";

const change = (seq: number, contentJson: string) =>
    ({
        id: `i${seq}`,
        seq,
        ts: 0,
        recovered: false,
        userId: `@u${seq}:x`,
        roomId: null,
        type: "t",
        contentJson,
        content: UNREAD_CONTENT,
    }) as unknown as AccountDataChange;

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("ChangeProcessor: contents", () => {
    it("reads each content when its change is recorded, and megabytes of them one unit at a time", async () => {
        const started: number[] = [];
        const release = new Map<number, () => void>();
        const dumps = new Map<number, string>();
        const p = new ChangeProcessor({
            dispatch: async (unit: AuditUnit) => {
                started.push(unit.seq);
                dumps.set(unit.seq, pythonDumpsContent((unit as AccountDataChange).content));
                await new Promise<void>((resolve) => release.set(unit.seq, resolve));
            },
        });
        const big = `{"a":"${"x".repeat(3 * 1024 * 1024)}"}`;
        const done = p.process([change(1, big), change(2, big), change(3, '{"small":1.0}')]);
        await settle();
        // 3 MB each, 4 MB at once: the second waits for the first; the small one does not wait.
        expect(started).toEqual([1, 3]);
        expect(dumps.get(3)).toBe('{"small": 1.0}');
        expect(dumps.get(1)?.slice(0, 10)).toBe('{"a": "xxx');
        release.get(1)?.();
        await settle();
        expect(started).toEqual([1, 3, 2]);
        release.get(2)?.();
        release.get(3)?.();
        expect(await done).toMatchObject({ acknowledgedThrough: 3 });
    });
});

describe("ChangeProcessor: a batch sent again while it is being posted", () => {
    it("joins the work under way, not the queue behind every batch started since", async () => {
        const dispatched: number[] = [];
        const gates = new Map<number, () => void>();
        const p = new ChangeProcessor({
            dispatch: async (unit: AuditUnit) => {
                dispatched.push(unit.seq);
                await new Promise<void>((resolve) => gates.set(unit.seq, resolve));
            },
        });
        const first = p.process([change(1, "{}"), change(2, "{}")]);
        const later = p.process([change(3, "{}")], 2); // sent behind it, and slow (one user's backlog)
        await settle();
        // The host module's request for seqs 1-2 was answered "pending": it sends the same batch again.
        const again = p.process([change(1, "{}"), change(2, "{}")], null, null, null, true);
        gates.get(1)?.();
        gates.get(2)?.();
        // Answered as soon as seqs 1-2 are posted, while seq 3 still is not; nothing posted twice.
        expect(await again).toEqual(await first);
        expect(dispatched).toEqual([1, 2, 3]);
        gates.get(3)?.();
        expect(await later).toMatchObject({ acknowledgedThrough: 3 });
    });
});

describe("ChangeProcessor: a batch sent again just after it was acknowledged", () => {
    it("gets the same acknowledgement, not a wait for a predecessor that started long ago", async () => {
        const dispatched: number[] = [];
        const p = new ChangeProcessor(
            { dispatch: async (unit: AuditUnit) => void dispatched.push(unit.seq) },
            undefined,
            8,
            50, // a predecessor that never comes fails the batch after 50 ms
        );
        const first = await p.process([change(1, "{}")]);
        const second = await p.process([change(2, "{}")], 1);
        // The host module's request for seq 2 was answered "pending" just before seq 2 was acknowledged: it sends
        // the same batch again, with the same `follows`.
        expect(await p.process([change(2, "{}")], 1, null, null, true)).toEqual(second);
        expect(first).toMatchObject({ acknowledgedThrough: 1 });
        expect(dispatched).toEqual([1, 2]);
    });
});
