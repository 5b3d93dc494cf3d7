/**
 * The JSONL export (README, "The JSONL export"): every record the audit room gets, one ECS line each, in seq order,
 * written and fdatasync'ed before the batch is acknowledged (ChangeProcessor waits for it), so the host module
 * keeps a record in its outbox until the file has it. Exactly once: the file's last line says the last seq it
 * holds, read again at every start and after every failed write; a resent record at or below it is skipped, and a
 * torn last line (a crash mid-write) is cut off, not copied. Batches are written one after another, in the order
 * the ChangeProcessor starts them; after a failure nothing is written until the host module resends from its
 * acknowledged position (a batch that does not `follow` another).
 *
 * Lines link like the room's events (PostedLinks): `prev_posted` names the previous line's record where every
 * record in between was seen and left out by the policy, so `verify --jsonl` tells those from missing lines.
 */
import { Logger } from "matrix-appservice-bridge";
import type { PostedRef } from "../modules/ModuleApi.js";
import { AuditPolicy, type AuditPolicyConfig } from "../modules/audit/Policy.js";
import type { AuditRecord } from "../modules/ModuleHost.js";
import { GENESIS } from "../verify/Chain.js";
import { ecsLine, exportEntry, parseLine } from "./ExportLine.js";
import { type FileOptions, JsonlFile } from "./JsonlFile.js";

const log = new Logger("JsonlSink");

/** Records left out by the policy in a row that still link to the last line (beyond: the link is not vouched). */
const MAX_LINKED = 100_000;

export interface SinkOptions {
    /** The export file; null: stdout only. */
    file: FileOptions | null;
    /** Also write every line to this stream (a container's stdout). */
    stdout?: NodeJS.WritableStream | null;
}

export class JsonlSink {
    private readonly file: JsonlFile | null;
    private readonly policy: AuditPolicy;
    /** The last line's record (the file's, or this process's for stdout only); null before the first. */
    private head: PostedRef | null = null;
    /**
     * Chain hashes of the records since `head` that link back to it through records seen here (all left out by
     * the policy), `head`'s own included: a record whose prev hash is one of them is vouched for (prev_posted).
     * Decided by the chain alone, so batches of the room's retry and sinks-only batches interleave freely.
     */
    private linked = new Set<string>();
    /** The highest seq handled here (written, or left out by the policy): what the host module is told. */
    private handled: number | null = null;
    /** Set by a failed write: the file is read again before the next write. */
    private stale = true;
    private queue: Promise<unknown> = Promise.resolve();

    public constructor(
        policy: AuditPolicyConfig,
        private readonly options: SinkOptions,
    ) {
        this.policy = new AuditPolicy(policy);
        this.file = options.file ? new JsonlFile(options.file) : null;
    }

    /** The last seq the export holds (null: none yet). */
    public lastSeq(): number | null {
        return this.head?.seq ?? null;
    }

    /** The last seq through which every record was handled (written, or left out by the policy). */
    public handledThrough(): number | null {
        return this.stale ? this.lastSeq() : this.handled;
    }

    /** Reads where the file ends (cutting a torn last line). Called at start; again after any failed write. */
    public async open(): Promise<void> {
        this.stale = true;
        if (this.file) {
            const { line, torn } = await this.file.open();
            if (torn > 0) log.warn(`Cut a torn last line of ${torn} bytes (an interrupted write) from the export`);
            const entry = line === null ? null : parseLine(line);
            if (line !== null && entry === null) {
                throw new Error("The export file's last line is not an audit record: refusing to guess where it ends");
            }
            this.head = entry ? { seq: Number(entry.record.seq), hash: String(entry.record.hash) } : null;
            this.linked = new Set(this.head ? [this.head.hash] : []);
            this.handled = this.head?.seq ?? null;
            if (this.head) log.info(`The export holds records through seq ${this.head.seq}`);
        }
        this.stale = false;
    }

    /**
     * Writes the records of a batch (in seq order) the export does not hold yet, then syncs once; resolves with
     * handledThrough(). `continuing`: the host module sent this batch behind the previous one (refused after a
     * failed write, whose resend reads the file again); `ackedHead`: the last record the host module deleted.
     */
    public write(
        records: readonly AuditRecord[],
        continuing: boolean,
        ackedHead: PostedRef | null,
    ): Promise<number | null> {
        const run = this.queue.then(() => this.writeNow(records, continuing, ackedHead));
        this.queue = run.catch(() => undefined);
        return run;
    }

    private async writeNow(
        records: readonly AuditRecord[],
        continuing: boolean,
        ackedHead: PostedRef | null,
    ): Promise<number | null> {
        if (this.stale && continuing) {
            throw new Error("The export failed on an earlier batch; waiting for the host module to resend");
        }
        if (this.stale) await this.open();
        // The host module deletes a record only once this sink handled it: acknowledged records beyond the last
        // line were all left out by the policy, and the chain goes on from there.
        if (ackedHead && this.head && ackedHead.seq > this.head.seq) this.link(ackedHead.hash);
        const lines: string[] = [];
        let head = this.head;
        let linked = this.linked;
        let handled = this.handled;
        for (const record of records) {
            if (handled !== null && record.seq <= handled) continue;
            handled = record.seq;
            if (head !== null && record.seq <= head.seq) continue;
            let vouched = false;
            if (record.chain !== null) {
                if (record.chain.prevHash === GENESIS && head === null) {
                    // The chain's first record: the first line can say the trail starts there.
                    head = { seq: 0, hash: GENESIS };
                    linked = new Set([GENESIS]);
                }
                vouched = linked.has(record.chain.prevHash);
            }
            const entry = exportEntry({ ...record, prevPosted: vouched ? head : null }, this.policy);
            if (entry === null) {
                if (vouched && record.chain && linked.size < MAX_LINKED) linked.add(record.chain.hash);
                continue;
            }
            lines.push(ecsLine(entry));
            head = { seq: record.seq, hash: record.chain?.hash ?? "" };
            linked = new Set([head.hash]);
        }
        if (lines.length > 0) {
            const text = `${lines.join("\n")}\n`;
            try {
                if (this.file) {
                    const rotated = await this.file.rotateIfDue(this.head?.seq ?? 0);
                    if (rotated) log.info(`Rotated the export to ${rotated}`);
                    await this.file.append(text);
                }
                this.options.stdout?.write(text);
            } catch (err) {
                // Part of the text may be in the file: read it again (cutting a torn line) before the next write.
                this.stale = true;
                throw new Error(`Writing the export failed: ${(err as Error).message}`, { cause: err });
            }
        }
        this.head = head;
        this.linked = linked;
        this.handled = handled;
        return this.handled;
    }

    private link(hash: string): void {
        if (this.linked.size < MAX_LINKED) this.linked.add(hash);
    }

    public async close(): Promise<void> {
        await this.queue;
        await this.file?.close();
    }
}
