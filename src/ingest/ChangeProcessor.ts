/**
 * Takes validated batches and runs every change through the module callbacks. Batches are processed one
 * at a time, in arrival order. Within a batch, one user's changes run strictly one after another, in
 * sequence order, while different users' changes overlap (up to `maxInFlight` at once): the homeserver
 * persists concurrent sends together, so this is what lets the audit trail keep up with bursts. With
 * `maxInFlight` 1 the audit room is in strict global order.
 *
 * A batch is acknowledged only when all its changes were handled; on failure, the longest fully handled
 * prefix is reported so the host module can drop it (later changes that did succeed are replayed, and
 * their transaction IDs keep them from posting twice).
 */
import { Logger } from "matrix-appservice-bridge";
import { SendFailedError } from "../matrix/SendErrors.js";
import type { AccountDataChange, ModuleHost } from "../modules/ModuleHost.js";
import type { Metrics } from "../Metrics.js";

const log = new Logger("ChangeProcessor");

/** How many recently handled change ids are remembered, to skip a replayed batch without resending. */
const RECENT_IDS = 20_000;

export class BatchFailedError extends Error {
    public constructor(
        message: string,
        /** Sequence number of the last change before which everything was handled, if any. */
        public readonly processedThrough: number | null,
    ) {
        super(message);
        this.name = "BatchFailedError";
    }
}

export interface BatchResult {
    acknowledgedThrough: number | null;
}

/** A counting semaphore: at most `limit` holders at once, served first come, first served. */
class Slots {
    private free: number;
    private readonly waiting: (() => void)[] = [];

    public constructor(limit: number) {
        this.free = limit;
    }

    public async run<T>(task: () => Promise<T>): Promise<T> {
        if (this.free > 0) {
            this.free--;
        } else {
            await new Promise<void>((resolve) => this.waiting.push(resolve));
        }
        try {
            return await task();
        } finally {
            const next = this.waiting.shift();
            if (next) next();
            else this.free++;
        }
    }
}

export class ChangeProcessor {
    private queue: Promise<unknown> = Promise.resolve();
    private readonly recentIds = new Set<string>();

    public constructor(
        private readonly modules: Pick<ModuleHost, "dispatch">,
        private readonly metrics?: Metrics,
        private readonly maxInFlight = 8,
    ) {}

    /** Resolves when no batch is being processed or waiting. */
    public async idle(): Promise<void> {
        let current: Promise<unknown>;
        do {
            current = this.queue;
            await current;
        } while (current !== this.queue);
    }

    /** Processes `changes` after any batch already in progress, so order holds across batches. */
    public process(changes: readonly AccountDataChange[]): Promise<BatchResult> {
        const run = this.queue.then(() => this.processNow(changes));
        this.queue = run.catch(() => undefined);
        return run;
    }

    private async processNow(changes: readonly AccountDataChange[]): Promise<BatchResult> {
        const slots = new Slots(this.maxInFlight);
        const lastOfUser = new Map<string, Promise<void>>();
        const outcomes = changes.map((change) => {
            const previous = lastOfUser.get(change.userId) ?? Promise.resolve();
            // If the user's previous change failed, this one must not run ahead of it.
            const done = previous.then(() => slots.run(() => this.handle(change)));
            lastOfUser.set(change.userId, done);
            return done;
        });
        const settled = await Promise.allSettled(outcomes);
        const firstFailure = settled.findIndex((s) => s.status === "rejected");
        if (firstFailure === -1) {
            const last = changes.at(-1);
            if (last) this.metrics?.lastSeq.set(last.seq);
            return { acknowledgedThrough: last?.seq ?? null };
        }
        const processedThrough = firstFailure > 0 ? (changes[firstFailure - 1] as AccountDataChange).seq : null;
        const reason = (settled[firstFailure] as PromiseRejectedResult).reason as Error;
        const failed = changes[firstFailure] as AccountDataChange;
        throw new BatchFailedError(`Change seq ${failed.seq} failed: ${reason.message}`, processedThrough);
    }

    private async handle(change: AccountDataChange): Promise<void> {
        if (this.recentIds.has(change.id)) return;
        const started = performance.now();
        try {
            await this.modules.dispatch(change);
        } catch (err) {
            const hint = err instanceof SendFailedError && err.adminHint ? ` ${err.adminHint}` : "";
            log.error(`Change ${change.id} (seq ${change.seq}) failed: ${(err as Error).message}.${hint}`);
            this.metrics?.changesFailed.inc();
            throw err;
        }
        this.metrics?.changeSeconds.observe((performance.now() - started) / 1000);
        this.metrics?.changesProcessed.inc();
        this.remember(change.id);
    }

    private remember(id: string): void {
        this.recentIds.add(id);
        if (this.recentIds.size > RECENT_IDS) {
            // Sets iterate in insertion order: drop the oldest.
            this.recentIds.delete(this.recentIds.values().next().value as string);
        }
    }
}
