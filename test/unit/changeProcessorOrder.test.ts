/**
 * ChangeProcessor: batches sent behind others (`follows`), the failures they inherit, and acknowledgements in
 * batch order. Fake timers: a predecessor's wait ends only when the test moves the clock.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BatchFailedError, ChangeProcessor } from "../../src/ingest/ChangeProcessor.js";
import type { AccountDataChange, AuditUnit } from "../../src/modules/ModuleHost.js";

const WAIT_MS = 1_000;

const change = (seq: number, user = `@u${seq}:x`) =>
    ({ id: `i${seq}`, seq, ts: 0, userId: user, roomId: null, type: "t" }) as AccountDataChange;

const ack = (through: number | null) => ({ acknowledgedThrough: through, postedHead: null });

/** A processor whose dispatch records seqs and fails while `failing` says so. */
function processor(failing: (seq: number) => boolean = () => false) {
    const handled: number[] = [];
    const processor = new ChangeProcessor(
        {
            dispatch: async (unit: AuditUnit) => {
                if (failing(unit.seq)) throw new Error(`cannot send ${unit.seq}`);
                handled.push(unit.seq);
            },
        },
        undefined,
        8,
        WAIT_MS,
    );
    return { processor, handled };
}

/** The promise's outcome (its value, or the error it rejected with), without leaving a rejection unhandled. */
const outcome = <T>(promise: Promise<T>): Promise<T | BatchFailedError> =>
    promise.catch((err: unknown) => err as BatchFailedError);

function expectFailure(err: unknown, message: string): void {
    expect(err).toBeInstanceOf(BatchFailedError);
    expect((err as BatchFailedError).name).toBe("BatchFailedError");
    expect((err as BatchFailedError).message).toBe(message);
    expect((err as BatchFailedError).processedThrough).toBeNull();
}

describe("ChangeProcessor: batches sent behind others", () => {
    beforeEach(() => {
        vi.useFakeTimers();
    });
    afterEach(() => {
        vi.useRealTimers();
    });

    it("fails a batch whose predecessor never comes, and lets the next one sent behind it wait afresh", async () => {
        const { processor: p, handled } = processor();
        const late = outcome(p.process([change(5)], 4));
        await vi.advanceTimersByTimeAsync(WAIT_MS - 1);
        const resent = outcome(p.process([change(6)], 4)); // still waiting: refused at once
        expectFailure(await resent, "Another batch already waits for the batch ending at seq 4");
        await vi.advanceTimersByTimeAsync(1);
        expectFailure(await late, "The batch ending at seq 4, sent before this one, never came");
        // The wait is over: a batch sent behind seq 4 again waits for it rather than being refused.
        const again = outcome(p.process([change(5)], 4));
        expect(await p.process([change(3), change(4)])).toEqual(ack(4));
        expect(await again).toEqual(ack(5));
        expect(handled).toEqual([3, 4, 5]);
    });

    it("refuses a second batch waiting for the same predecessor, and still starts the first", async () => {
        const { processor: p, handled } = processor();
        const first = outcome(p.process([change(3)], 2));
        expectFailure(
            await outcome(p.process([change(4)], 2)),
            "Another batch already waits for the batch ending at seq 2",
        );
        expect(await p.process([change(1), change(2)])).toEqual(ack(2));
        await vi.advanceTimersByTimeAsync(WAIT_MS);
        expect(await first).toEqual(ack(3));
        expect(handled).toEqual([1, 2, 3]);
    });

    it("forgets a predecessor's wait once it came: a later batch sent behind the same seq waits for it again", async () => {
        const { processor: p, handled } = processor();
        const second = outcome(p.process([change(3)], 2));
        expect(await p.process([change(1), change(2)])).toEqual(ack(2));
        expect(await second).toEqual(ack(3));
        await vi.advanceTimersByTimeAsync(WAIT_MS / 2);
        // The host module resends its pipeline: the batch behind seq 2 arrives before seq 2's batch again.
        const resent = outcome(p.process([change(4)], 2));
        await vi.advanceTimersByTimeAsync(WAIT_MS / 2 + 1); // past the first wait's end: that timer is gone
        expect(await p.process([change(1), change(2)])).toEqual(ack(2));
        await vi.advanceTimersByTimeAsync(WAIT_MS);
        expect(await resent).toEqual(ack(4));
        expect(handled).toEqual([1, 2, 3, 4]);
    });

    it("fails every batch sent behind a failed one at once, naming the batch before it", async () => {
        const { processor: p, handled } = processor((seq) => seq === 1);
        expect(await outcome(p.process([change(1)]))).toBeInstanceOf(BatchFailedError);
        const second = outcome(p.process([change(2)], 1));
        const third = outcome(p.process([change(3)], 2));
        expectFailure(await second, "The batch ending at seq 1, before this one, failed");
        // No wait for the second batch to come: it has (it failed at once).
        expectFailure(await third, "The batch ending at seq 2, before this one, failed");
        expect(handled).toEqual([]);
    });

    it("forgets a failure once the failed batch is resent on its own and goes through", async () => {
        let failing = true;
        const { processor: p, handled } = processor(() => failing);
        expect(await outcome(p.process([change(1)]))).toBeInstanceOf(BatchFailedError);
        failing = false;
        expect(await p.process([change(1)])).toEqual(ack(1));
        expect(await p.process([change(2)], 1)).toEqual(ack(2));
        expect(handled).toEqual([1, 2]);
    });

    it("keeps a failure through an empty batch sent on its own", async () => {
        const { processor: p, handled } = processor((seq) => seq === 1);
        expect(await outcome(p.process([change(1)]))).toBeInstanceOf(BatchFailedError);
        expect(await p.process([])).toEqual(ack(null));
        expectFailure(await outcome(p.process([change(2)], 1)), "The batch ending at seq 1, before this one, failed");
        expect(handled).toEqual([]);
    });

    it.each([
        [64, "still fails", true],
        [65, "goes through", false],
    ])(
        "remembers the last 64 failed batches: after %i failures, a batch behind the oldest %s",
        async (failures, _, fails) => {
            let failing = true;
            const { processor: p } = processor(() => failing);
            for (let i = 0; i < failures; i++) {
                expect(await outcome(p.process([change(11 + i)]))).toBeInstanceOf(BatchFailedError);
            }
            failing = false;
            expect(await p.process([change(200)])).toEqual(ack(200));
            // A batch sent behind seq 11 (the oldest failure) arrives before the batch ending at 11 is resent.
            const behind = outcome(p.process([change(300)], 11));
            expect(await p.process([change(11)], 200)).toEqual(ack(11));
            await vi.advanceTimersByTimeAsync(WAIT_MS);
            const result = await behind;
            if (fails) expectFailure(result, "The batch ending at seq 11, before this one, failed");
            else expect(result).toEqual(ack(300));
        },
    );
});

describe("ChangeProcessor: acknowledgements in batch order", () => {
    it("stays busy, and holds later acknowledgements, until the latest batch is done", async () => {
        const gates = new Map<number, () => void>();
        const acks: number[] = [];
        const p = new ChangeProcessor({
            dispatch: async (unit: AuditUnit) => {
                if (unit.seq !== 3) await new Promise<void>((resolve) => gates.set(unit.seq, resolve));
            },
        });
        const track = (promise: Promise<{ acknowledgedThrough: number | null }>) =>
            promise.then((r) => void acks.push(r.acknowledgedThrough ?? -1));
        const first = track(p.process([change(1)]));
        const second = track(p.process([change(2)]));
        let idle = false;
        const idled = p.idle().then(() => (idle = true));
        await vi.waitFor(() => expect(gates.size).toBe(2));
        expect(idle).toBe(false);
        gates.get(1)?.();
        await first;
        // The first batch is done, the second is not: still busy, and a third batch acknowledges after the second.
        const third = track(p.process([change(3)]));
        await new Promise((resolve) => setImmediate(resolve));
        expect(idle).toBe(false);
        expect(acks).toEqual([1]);
        gates.get(2)?.();
        await Promise.all([second, third, idled]);
        expect(acks).toEqual([1, 2, 3]);
        expect(idle).toBe(true);
    });
});
