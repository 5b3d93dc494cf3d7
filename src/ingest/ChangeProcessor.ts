/**
 * Takes validated batches and runs every change through the module callbacks, one batch at a time and in
 * sequence order. A batch is acknowledged only when all its changes were handled; on failure, the changes
 * before the failing one are reported as processed so the host module can drop them.
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
        /** Sequence number of the last change that was fully handled, if any. */
        public readonly processedThrough: number | null,
    ) {
        super(message);
        this.name = "BatchFailedError";
    }
}

export interface BatchResult {
    acknowledgedThrough: number | null;
}

export class ChangeProcessor {
    private queue: Promise<unknown> = Promise.resolve();
    private readonly recentIds = new Set<string>();

    public constructor(
        private readonly modules: Pick<ModuleHost, "dispatch">,
        private readonly metrics?: Metrics,
    ) {}

    /** Processes `changes` after any batch already in progress, so order holds across batches. */
    public process(changes: readonly AccountDataChange[]): Promise<BatchResult> {
        const run = this.queue.then(() => this.processNow(changes));
        this.queue = run.catch(() => undefined);
        return run;
    }

    private async processNow(changes: readonly AccountDataChange[]): Promise<BatchResult> {
        let processedThrough: number | null = null;
        for (const change of changes) {
            if (!this.recentIds.has(change.id)) {
                const started = performance.now();
                try {
                    await this.modules.dispatch(change);
                } catch (err) {
                    const hint = err instanceof SendFailedError && err.adminHint ? ` ${err.adminHint}` : "";
                    log.error(`Change ${change.id} (seq ${change.seq}) failed: ${(err as Error).message}.${hint}`);
                    this.metrics?.changesFailed.inc();
                    throw new BatchFailedError(
                        `Change seq ${change.seq} failed: ${(err as Error).message}`,
                        processedThrough,
                    );
                }
                this.metrics?.changeSeconds.observe((performance.now() - started) / 1000);
                this.remember(change.id);
                this.metrics?.changesProcessed.inc();
            }
            processedThrough = change.seq;
            this.metrics?.lastSeq.set(change.seq);
        }
        return { acknowledgedThrough: processedThrough };
    }

    private remember(id: string): void {
        this.recentIds.add(id);
        if (this.recentIds.size > RECENT_IDS) {
            // Sets iterate in insertion order: drop the oldest.
            this.recentIds.delete(this.recentIds.values().next().value as string);
        }
    }
}
