/**
 * Takes validated batches and runs every change through the module callbacks (see ChangeScheduler for the
 * order: one user's changes one after another, across batches too, up to `maxInFlight` at once, lowest seq
 * first). The host module sends the next batch before the previous one is acknowledged, so the sends never
 * stall at a batch boundary; `follows` puts such batches back in order if they arrive the other way round.
 *
 * A batch is acknowledged only when all its changes, and every earlier batch, were handled; on failure, the
 * longest fully handled prefix is reported so the host module can drop it (later changes that did succeed
 * are replayed, and skipped or deduplicated by their transaction IDs, so they never post twice).
 */
import { Logger } from "matrix-appservice-bridge";
import { holdsDelivery, SendFailedError } from "../matrix/SendErrors.js";
import type { DeliveryHealth } from "./DeliveryHealth.js";
import { ChangeScheduler } from "./ChangeScheduler.js";
import { ContentBudget } from "./ContentBudget.js";
import { readUnitContent } from "./ContentReader.js";
import type { PostedRef } from "../modules/ModuleApi.js";
import {
    type AccountDataChange,
    type AuditRecord,
    type AuditUnit,
    isGap,
    lastSeqOf,
    type ModuleHost,
    toUnits,
} from "../modules/ModuleHost.js";
import type { PostedLinks } from "./PostedLinks.js";
import type { Metrics } from "../Metrics.js";
import type { JsonlSink } from "../export/JsonlSink.js";

const log = new Logger("ChangeProcessor");

/** How many recently handled change ids are remembered, to skip a replayed batch without resending. */
const RECENT_IDS = 20_000;

/** Content text read at once, at most (a single larger unit is read alone): some 300 MB of memory at worst. */
const CONTENT_BUDGET_BYTES = 4 * 1024 * 1024;
/** A unit with no more content text than this is read at once, whatever the budget (see ContentBudget). */
const CONTENT_BUDGET_FREE_BYTES = 64 * 1024;

/** The bytes of content text a unit reads when it is recorded. */
function contentBytes(unit: AuditUnit): number {
    // Typed as always there; a module's own tests may dispatch changes without it.
    const textOf = (change: AccountDataChange) =>
        typeof change.contentJson === "string" ? change.contentJson.length : 0;
    if (unit.kind === "digest") return unit.changes.reduce((sum, c) => sum + textOf(c), 0);
    return unit.kind === undefined || unit.kind === "change" ? textOf(unit) : 0;
}

/** How many acknowledged batches are remembered (more than the host module keeps in flight: 64). */
const ACKNOWLEDGED_KEPT = 256;

/** How many failed batches are remembered, to fail the batches the host module had sent behind them. */
const FAILED_BATCHES = 64;

/** How long a batch that arrived before its predecessor waits for it (normally a few milliseconds). */
const PREDECESSOR_WAIT_MS = 5_000;

export class BatchFailedError extends Error {
    public constructor(
        message: string,
        /** Sequence number of the last change before which everything was handled, if any. */
        public readonly processedThrough: number | null,
        /** The posted head through `processedThrough` (see PostedLinks). */
        public readonly postedHead: PostedRef | null = null,
    ) {
        super(message);
        this.name = "BatchFailedError";
    }
}

export interface BatchResult {
    acknowledgedThrough: number | null;
    /** The last record posted through `acknowledgedThrough`, for the host module to store (PostedLinks). */
    postedHead: PostedRef | null;
}

export class ChangeProcessor {
    private readonly scheduler: ChangeScheduler;
    /** Bounds the contents read at once (see ContentBudget). */
    private readonly contentBudget = new ContentBudget(CONTENT_BUDGET_BYTES, CONTENT_BUDGET_FREE_BYTES);
    /** The latest batch's result while it runs: a batch is acknowledged only after the one before it. */
    private running: Promise<BatchResult> | undefined;
    /** The last seq of the latest batch started, and the batches waiting for theirs (by `follows`). */
    private lastStartedSeq: number | null = null;
    private readonly waitingFor = new Map<number, () => void>();
    private readonly recentIds = new Set<string>();
    /** The batches being posted, by their seqs (batchKey): a batch sent again meanwhile joins its own. */
    private readonly underWay = new Map<string, Promise<BatchResult>>();
    /** The last batches acknowledged, by their seqs: a batch sent again just after gets the same answer. */
    private readonly acknowledged = new Map<string, Promise<BatchResult>>();
    /** The last seqs of recent batches that failed: a batch that `follows` one of them fails too. */
    private readonly failedBatchEnds = new Set<number>();

    public constructor(
        private readonly modules: Pick<ModuleHost, "dispatch">,
        private readonly metrics?: Metrics,
        maxInFlight = 8,
        private readonly predecessorWaitMs = PREDECESSOR_WAIT_MS,
        private readonly links: PostedLinks | null = null,
        private readonly health: DeliveryHealth | null = null,
        /** The JSONL export: a batch is acknowledged only once the file holds it too. */
        private readonly sink: Pick<JsonlSink, "write" | "handledThrough"> | null = null,
    ) {
        this.scheduler = new ChangeScheduler(maxInFlight, (change) => this.handle(change));
    }

    /** Resolves when no batch is being processed. */
    public async idle(): Promise<void> {
        while (this.running) await this.running.catch(() => undefined);
    }

    /**
     * Starts `changes` behind any earlier changes of the same users; results come in batch order. A batch
     * that `follows` another (the host module sent it while that one was unanswered) starts only after it.
     */
    public async process(
        records: readonly AuditRecord[],
        follows: number | null = null,
        postedHead: PostedRef | null = null,
        ackedHead: PostedRef | null = null,
        again = false,
    ): Promise<BatchResult> {
        // The same batch sent again because its answer said it was still being posted (IngestRoute): it joins the
        // work under way, or, if that has just been acknowledged (the "pending" answer and its end crossed), gets
        // that acknowledgement. Started afresh it would queue behind everything started since, or wait for a
        // predecessor that started long ago, and fail. It changes nothing of the order batches start in.
        const key = batchKey(records);
        const underWay = again ? (this.underWay.get(key) ?? this.acknowledged.get(key)) : undefined;
        if (underWay) return underWay;
        if (follows !== null && follows !== this.lastStartedSeq) await this.predecessor(follows);
        if (follows !== null && this.failedBatchEnds.has(follows)) {
            // The batch before this one failed after it had finished here: acknowledging this one would let the host
            // module drop changes that belong after the failed ones (the host module resends from the failed batch).
            this.noteFailed(records);
            this.started(records);
            throw new BatchFailedError(`The batch ending at seq ${follows}, before this one, failed`, null);
        }
        // Sent on its own (a retry, or the first of the host module's pipeline): an earlier failure ending at the
        // same seq no longer says anything about the batches sent behind this one.
        if (follows === null) this.failedBatchEnds.delete(records.at(-1)?.seq ?? -1);
        // The export gets the batch in the order batches start; its write and the room's posts run side by side.
        const exported: Promise<Error | null> = this.sink
            ? this.sink.write(records, follows !== null, ackedHead).then(
                  () => null,
                  (err: unknown) => err as Error,
              )
            : Promise.resolve(null);
        const planned = this.links ? this.links.plan(records, follows !== null, postedHead, ackedHead) : records;
        const changes = toUnits(planned);
        const outcomes = changes.map((change) => this.scheduler.submit(change));
        // Only a batch still running holds this one back: a failure already reported does not (the batch
        // after it is the retry).
        const result = this.settle(changes, outcomes, this.running, exported);
        result.catch(() => this.noteFailed(records));
        this.running = result;
        this.underWay.set(key, result);
        const finished = (acknowledged: boolean) => {
            if (this.running === result) this.running = undefined;
            if (this.underWay.get(key) === result) this.underWay.delete(key);
            if (!acknowledged) return;
            this.acknowledged.set(key, result);
            if (this.acknowledged.size > ACKNOWLEDGED_KEPT) {
                this.acknowledged.delete(this.acknowledged.keys().next().value as string);
            }
        };
        result.then(
            () => finished(true),
            () => finished(false),
        );
        this.started(records);
        return result;
    }

    /** Whether the JSONL export is on (answers then say how far it got: `sinks`). */
    public get exporting(): boolean {
        return this.sink !== null;
    }

    /** The last seq the export handled, for the answer's `sinks` (null: none yet, or no export). */
    public exportedThrough(): number | null {
        return this.sink?.handledThrough() ?? null;
    }

    /**
     * A `sinks_only` batch: the room refuses records, and the host module keeps the export going behind the
     * batch it retries. Written to the file only: no posting, no planned links, no effect on the room's order.
     */
    public async exportOnly(records: readonly AuditRecord[], ackedHead: PostedRef | null): Promise<number | null> {
        if (!this.sink) return null;
        return this.sink.write(records, false, ackedHead);
    }

    /** `records` have started (or failed at once): the batch sent behind them may start. */
    private started(records: readonly AuditRecord[]): void {
        const last = records.at(-1);
        if (!last) return;
        this.lastStartedSeq = last.seq;
        const next = this.waitingFor.get(last.seq);
        this.waitingFor.delete(last.seq);
        next?.();
    }

    private noteFailed(records: readonly AuditRecord[]): void {
        const last = records.at(-1);
        if (!last) return;
        this.failedBatchEnds.add(last.seq);
        if (this.failedBatchEnds.size > FAILED_BATCHES) {
            this.failedBatchEnds.delete(this.failedBatchEnds.values().next().value as number);
        }
    }

    /** Resolves once the batch ending at `seq` has started; rejects if it does not arrive in time. */
    private predecessor(seq: number): Promise<void> {
        return new Promise((resolve, reject) => {
            if (this.waitingFor.has(seq)) {
                reject(new BatchFailedError(`Another batch already waits for the batch ending at seq ${seq}`, null));
                return;
            }
            const timer = setTimeout(() => {
                this.waitingFor.delete(seq);
                // The host module resends it after the batches before it are answered.
                reject(new BatchFailedError(`The batch ending at seq ${seq}, sent before this one, never came`, null));
            }, this.predecessorWaitMs);
            this.waitingFor.set(seq, () => {
                clearTimeout(timer);
                resolve();
            });
        });
    }

    private async settle(
        changes: readonly AuditUnit[],
        outcomes: Promise<void>[],
        earlierBatch: Promise<BatchResult> | undefined,
        exported: Promise<Error | null>,
    ): Promise<BatchResult> {
        const settled = await Promise.allSettled(outcomes);
        // Acknowledgements follow the sequence: if the batch before this one failed, so does this one, with
        // the earlier batch's error and handled prefix (the host module resends from there).
        await earlierBatch;
        const exportFailed = await exported;
        if (exportFailed) {
            log.error(`${exportFailed.message}; the host module resends the batch`);
            this.metrics?.changesFailed.inc();
            // Nothing is acknowledged: the room skips what it posted already (transaction IDs), the file too (seqs).
            throw new BatchFailedError(exportFailed.message, null);
        }
        const firstFailure = settled.findIndex((s) => s.status === "rejected");
        if (firstFailure === -1) {
            // Digests of different lanes interleave: the last unit need not hold the highest seq.
            const acknowledgedThrough = changes.length > 0 ? Math.max(...changes.map(lastSeqOf)) : null;
            if (acknowledgedThrough !== null) this.metrics?.lastSeq.set(acknowledgedThrough);
            return { acknowledgedThrough, postedHead: this.headThrough(acknowledgedThrough) };
        }
        const processedThrough = handledThrough(changes, firstFailure);
        const reason = (settled[firstFailure] as PromiseRejectedResult).reason as Error;
        const failed = changes[firstFailure] as AuditUnit;
        throw new BatchFailedError(
            `Change seq ${failed.seq} failed: ${reason.message}`,
            processedThrough,
            this.headThrough(processedThrough),
        );
    }

    private headThrough(seq: number | null): PostedRef | null {
        return this.links?.headThrough(seq ?? -1) ?? null;
    }

    private async handle(change: AuditUnit): Promise<void> {
        if (this.recentIds.has(change.id)) return;
        if (change.kind === "digest") {
            log.debug(`Digest of ${change.changes.length} changes (seq ${change.seq}-${change.lastSeq})`);
        } else if (isGap(change)) {
            log.warn(
                `Gap notice (seq ${change.seq}): up to ${change.lost} account-data values of ` +
                    `${change.keys.length} keys were overwritten before they could be recorded`,
            );
        } else if (change.kind === "deactivation") {
            log.info(`${change.userId} was ${change.deactivated ? "deactivated" : "reactivated"} (seq ${change.seq})`);
        } else if (change.kind === "checkpoint") {
            log.debug(`Checkpoint (seq ${change.seq})`);
        } else if (change.recovered) {
            log.info(`Recovered change (seq ${change.seq}): ${change.userId} ${change.type}`);
        }
        const started = performance.now();
        const release = await this.contentBudget.take(contentBytes(change));
        try {
            await this.modules.dispatch(readUnitContent(change));
        } catch (err) {
            if (holdsDelivery(err)) this.health?.held(err);
            const hint = err instanceof SendFailedError && err.adminHint ? ` ${err.adminHint}` : "";
            log.error(`Change ${change.id} (seq ${change.seq}) failed: ${(err as Error).message}.${hint}`);
            this.metrics?.changesFailed.inc();
            throw err;
        } finally {
            release();
        }
        this.health?.delivered();
        this.metrics?.changeSeconds.observe((performance.now() - started) / 1000);
        if (change.kind === "digest") {
            this.metrics?.digests.inc();
            this.metrics?.changesProcessed.inc(change.changes.length);
            this.metrics?.changesRecovered.inc(change.changes.filter((c) => c.recovered).length);
        } else if (isGap(change)) {
            this.metrics?.gapNotices.inc();
        } else if (change.kind !== "deactivation" && change.kind !== "checkpoint") {
            this.metrics?.changesProcessed.inc();
            if (change.recovered) this.metrics?.changesRecovered.inc();
        }
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

/** A batch's identity: its records' seqs (a resend of a batch carries exactly the same ones). */
function batchKey(records: readonly AuditRecord[]): string {
    return records.map((r) => r.seq).join(",");
}

/**
 * How far the units before `failed` (units in order of their first seq) handled every seq: up to where no
 * digest among them reaches past the next unit's first seq (digests of different lanes interleave, and a
 * digest is acknowledged whole or not at all, so its replay is the same event). Null if nowhere.
 */
function handledThrough(units: readonly AuditUnit[], failed: number): number | null {
    let reach = -1;
    let through: number | null = null;
    for (let i = 0; i < failed; i++) {
        reach = Math.max(reach, lastSeqOf(units[i] as AuditUnit));
        if ((units[i + 1] as AuditUnit).seq > reach) through = reach;
    }
    return through;
}
