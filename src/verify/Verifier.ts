/**
 * Checks an audit room's trail from its events (README, "Verifying the trail"), streaming: events go in one at a
 * time, in room order, and memory stays bounded by a small window plus 32 bytes per record (SeqHashes), so a room
 * of millions of records can be checked. Every copy of a record is checked on its own (RecordChecks.ts); copies
 * of one seq must be the same record and show the same (identical resends are information, others a problem:
 * the chain hash does not cover the body, the HTML or the record's presentation fields). Records are then
 * put in seq order through a reorder window (posting is concurrent, so the room is only nearly in order) and
 * the chain followed from record to record: missing records, broken links, where the trail starts (at the
 * chain's first record, at `--from`, or where the previous incremental run stopped), and, with `maxAgeMs`,
 * whether the newest record is recent enough (checkpoints make an idle trail recent). Redacted audit events,
 * edits of them, look-alike messages from anyone but the sender, and messages from the sender without a chain
 * after the chain began are reported too. Pure: RoomReader fetches the events.
 */
import type { RoomEvent } from "../devenv/MatrixHttp.js";
import { createHash } from "node:crypto";
import { RECORD_KEY } from "../modules/audit/Record.js";
import { GENESIS } from "./Chain.js";
import {
    AUDIT_SENTENCE,
    type ChainedRecord,
    chainedRecordsOf,
    checkEvent,
    isRedacted,
    type Problem,
    replaces,
} from "./RecordChecks.js";
import { SeqHashes } from "./SeqHashes.js";
import { SeqHeap } from "./SeqHeap.js";

export type { Problem, ProblemKind } from "./RecordChecks.js";

export interface Report {
    intact: boolean;
    records: number;
    firstSeq: number | null;
    lastSeq: number | null;
    firstTs: number | null;
    lastTs: number | null;
    /** Where the checked trail starts: the chain's first record, `--from`, the state file, or neither. */
    start: "genesis" | "from" | "state" | "unanchored" | null;
    /** The newest record by time (checkpoints count), for liveness. */
    newest: { seq: number; ts: number } | null;
    /** Seqs between posted records that the next one declares left out by the audit policy. */
    omittedByPolicy: number;
    /** Audit events from before the hash chain (older versions), not checked. */
    unchained: number;
    duplicates: { seq: number; eventIds: string[] }[];
    problems: Problem[];
}

/** Where an earlier run stopped (VerifyState): the walk continues from this record. */
export interface VerifiedPoint {
    seq: number;
    hash: string;
    /** Hashes of recent seqs, to compare late copies with. */
    recent: Record<string, string>;
}

export interface VerifyOptions {
    fromSeq?: number;
    /** The newest record must be at most this old; else a `stale` problem. */
    maxAgeMs?: number | null;
    now?: number;
    /** Continue after an earlier run (see VerifyState). */
    after?: VerifiedPoint | null;
    /**
     * For incremental runs: records newer than this (before the newest) are checked next time rather than now,
     * since a record posted a moment earlier than them may still be on its way (posting is concurrent).
     */
    settleMs?: number;
    /** Events an earlier run checked already (ResumePoint.checkedAfter). */
    skipEventIds?: readonly string[];
}

/** Where the next incremental run goes on: the walk's position, and the last event read before it. */
export interface ResumePoint {
    verified: VerifiedPoint;
    /** The room's event after which the next run reads; null: from the room's start. */
    afterEventId: string | null;
    /** Events after that one which this run checked already (the next run skips them). */
    checkedAfter: string[];
}

/** Records waiting for the walk in seq order; posting reorders them by at most a few batches. */
const REORDER_WINDOW = 20_000;
/** Duplicates listed one by one in the report (all are counted in `problems` only if they conflict). */
const DUPLICATES_LISTED = 1_000;
/** First copies' event IDs remembered, to name both copies of a duplicate (resends come soon after). */
const EVENT_IDS_KEPT = 100_000;

/** A cheap 53-bit hash of an event ID: the sender's event IDs are kept as numbers, to find edits of them. */
function idKey(id: string): number {
    let h1 = 0x811c9dc5;
    let h2 = 0x01000193;
    for (let i = 0; i < id.length; i++) {
        const c = id.charCodeAt(i);
        h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
        h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
    }
    return (h1 & 0x1fffff) * 0x100000000 + h2;
}

export class TrailVerifier {
    private readonly problems: Problem[] = [];
    private readonly duplicates: Report["duplicates"] = [];
    private readonly hashes = new SeqHashes();
    /** What each seq's first copy shows (copyFingerprint), to compare later copies with. */
    private readonly fingerprints = new SeqHashes();
    private readonly pending = new SeqHeap();
    private readonly senderEvents = new Set<number>();
    private readonly firstCopies = new Map<number, string>();
    /** The IDs of the last events read (a ring by position), to name where an incremental run stopped. */
    private readonly recentEvents: string[] = new Array<string>(REORDER_WINDOW);
    private eventsRead = 0;
    private resumeAfter: string | null = null;
    private settled: { point: { seq: number; hash: string }; checkedAfter: string[] } | null = null;
    /** Event IDs the next run is told to skip (an incremental run's re-read overlap). */
    private readonly skip: Set<string>;
    private readonly edits: { eventId: string; target: string; sender: string }[] = [];
    private readonly fromSeq: number;
    private chainBegan = false;
    private unchained = 0;
    private records = 0;
    /** The last record the walk passed (in seq order), and the first. */
    private before: { seq: number; hash: string } | null;
    private first: ChainedRecord | null = null;
    private last: ChainedRecord | null = null;
    private newest: { seq: number; ts: number } | null = null;
    private omittedByPolicy = 0;
    private start: Report["start"] = null;
    private redactions = 0;

    public constructor(
        private readonly sender: string,
        private readonly options: VerifyOptions = {},
    ) {
        this.fromSeq = options.fromSeq ?? 0;
        this.skip = new Set(options.skipEventIds ?? []);
        const after = options.after ?? null;
        this.before = after ? { seq: after.seq, hash: after.hash } : null;
        if (after) {
            this.start = "state";
            this.chainBegan = true;
            for (const [seq, hash] of Object.entries(after.recent)) this.hashes.set(Number(seq), hash);
        }
    }

    /** Takes the room's next event. */
    public add(event: RoomEvent): void {
        if (this.skip.has(event.event_id)) return;
        this.recentEvents[this.eventsRead++ % REORDER_WINDOW] = event.event_id;
        if (event.type === "m.room.redaction" || event.type !== "m.room.message") return;
        const fromSender = event.sender === this.sender;
        if (fromSender) this.senderEvents.add(idKey(event.event_id));
        const target = replaces(event);
        if (target !== null) {
            this.edits.push({ eventId: event.event_id, target, sender: event.sender });
            return;
        }
        if (!fromSender) {
            if (AUDIT_SENTENCE.test(String(event.content.body)) || RECORD_KEY in event.content) {
                this.problem("look_alike", null, event.event_id, `an audit-like message from ${event.sender}`);
            }
            return;
        }
        if (isRedacted(event)) {
            this.redactions++;
            this.problem("redacted", null, event.event_id, "an audit event was redacted");
            return;
        }
        const records = chainedRecordsOf(event);
        if (records === null) {
            if (!this.chainBegan) this.unchained++;
            else this.problem("unchained", null, event.event_id, "a message from the sender without a hash chain");
            return;
        }
        this.chainBegan = true;
        const problems = checkEvent(event, records, this.fromSeq);
        this.problems.push(...problems);
        for (const record of records) {
            // A copy that fails its own checks is reported already: never listed as an identical resend.
            const sound = !problems.some((p) => p.seq === record.seq);
            // What it shows is compared only for an event that checks out whole (a digest is one body and HTML).
            const shows = problems.length === 0 ? copyFingerprint(event, record) : null;
            this.take({ ...record, order: this.eventsRead }, sound, shows);
        }
    }

    /** Every copy: compared with the first copy of its seq; the first goes on to the walk. */
    private take(record: ChainedRecord, sound: boolean, fingerprint: string | null): void {
        const known = this.hashes.get(record.seq);
        if (known !== null) {
            // Unknown for seqs an earlier incremental run saw (its state keeps their hashes only).
            const shown = this.fingerprints.get(record.seq);
            if (known !== record.hash) {
                this.problem("conflicting_records", record.seq, record.eventId, "two different records with one seq");
            } else if (fingerprint !== null && shown !== null && shown !== fingerprint) {
                this.problem(
                    "conflicting_records",
                    record.seq,
                    record.eventId,
                    "a copy of the record that shows something else (body, HTML or record fields)",
                );
            } else if (sound && this.duplicates.length < DUPLICATES_LISTED) {
                const listed = this.duplicates.find((d) => d.seq === record.seq);
                if (listed) listed.eventIds.push(record.eventId);
                else {
                    const first = this.firstCopies.get(record.seq) ?? "(an earlier copy)";
                    this.duplicates.push({ seq: record.seq, eventIds: [first, record.eventId] });
                }
            }
            return;
        }
        this.hashes.set(record.seq, record.hash);
        if (fingerprint !== null) this.fingerprints.set(record.seq, fingerprint);
        this.firstCopies.set(record.seq, record.eventId);
        if (this.firstCopies.size > EVENT_IDS_KEPT) {
            this.firstCopies.delete(this.firstCopies.keys().next().value as number);
        }
        if (record.seq < this.fromSeq) return;
        if (this.newest === null || record.ts >= this.newest.ts) this.newest = { seq: record.seq, ts: record.ts };
        if (this.before !== null && record.seq <= this.before.seq) {
            // Behind the walk: an earlier run (or the reorder window) passed this seq without it.
            this.problem(
                "late_copy",
                record.seq,
                record.eventId,
                `a record of seq ${record.seq} appeared after the trail had passed it`,
            );
            return;
        }
        // The walk needs only the links: drop the record's fields (content and all) while it waits.
        this.pending.push({ ...record, fields: {} });
        if (this.pending.size > REORDER_WINDOW) this.walk(this.pending.pop() as ChainedRecord);
    }

    /** The next record in seq order: its link to the one before it, or where the trail starts. */
    private walk(record: ChainedRecord): void {
        this.records++;
        this.first ??= record;
        this.last = record;
        const before = this.before;
        this.before = { seq: record.seq, hash: record.hash };
        if (before === null) {
            this.anchor(record);
            return;
        }
        const declared = record.prevPosted;
        if (record.seq === before.seq + 1 && record.prevHash !== before.hash) {
            this.problem("broken_link", record.seq, record.eventId, `prev_hash is not the hash of seq ${before.seq}`);
        }
        if (declared === null) {
            if (record.seq > before.seq + 1) {
                const detail = `seqs ${before.seq + 1}-${record.seq - 1} are not in the room, and no record says why`;
                this.problem("missing", before.seq + 1, record.eventId, detail);
            }
        } else if (declared.seq === before.seq && declared.hash === before.hash) {
            this.omittedByPolicy += record.seq - before.seq - 1;
        } else if (declared.seq > before.seq) {
            const detail = `seq ${declared.seq} (and any posted record after seq ${before.seq}) is not in the room`;
            this.problem("missing", declared.seq, record.eventId, detail);
        } else {
            const detail = `says the record before it is seq ${declared.seq}, but the room shows seq ${before.seq}`;
            this.problem("broken_link", record.seq, record.eventId, detail);
        }
    }

    /** The first record walked: the trail must start at the chain's first record or at `--from`. */
    private anchor(record: ChainedRecord): void {
        const declared = record.prevPosted;
        if (record.prevHash === GENESIS || (declared?.seq === 0 && declared.hash === GENESIS)) {
            this.start = "genesis";
            if (declared !== null && record.prevHash !== GENESIS) this.omittedByPolicy += record.seq - 1;
        } else if (
            this.fromSeq > 0 &&
            (record.seq === this.fromSeq || (declared !== null && declared.seq < this.fromSeq))
        ) {
            this.start = "from";
        } else {
            this.start = "unanchored";
            const detail =
                `the trail starts at seq ${record.seq}, not at the chain's first record: the records before it are ` +
                "not in the room (purged, or never posted), and nothing accounts for them";
            this.problem("unanchored_start", record.seq, record.eventId, detail);
        }
    }

    /** The ID of the event read at `position` (1-based), if it is among the last ones kept; else null. */
    private eventRead(position: number): string | null {
        if (position < 1 || position > this.eventsRead || this.eventsRead - position >= REORDER_WINDOW) return null;
        return this.recentEvents[(position - 1) % REORDER_WINDOW] ?? null;
    }

    private problem(kind: Problem["kind"], seq: number | null, eventId: string, detail: string): void {
        this.problems.push({ kind, seq, eventId, detail });
    }

    /** The report, after the room's last event. */
    public finish(): Report {
        this.resumeAfter = this.eventRead(this.eventsRead);
        const settle = this.options.settleMs;
        if (settle !== undefined && this.newest !== null) {
            // Walk what has settled; the rest is read again next time, from the event before the first of it.
            const cutoff = this.newest.ts - settle;
            const walkedOrders: { order: number; eventId: string }[] = [];
            let top = this.pending.pop();
            while (top !== undefined && top.ts <= cutoff) {
                this.walk(top);
                walkedOrders.push({ order: top.order ?? 0, eventId: top.eventId });
                top = this.pending.pop();
            }
            if (top !== undefined) this.pending.push(top);
            if (top !== undefined && this.before !== null) {
                const firstOrder = this.pending.minOrder() ?? this.eventsRead;
                // The event just before the first unsettled record's.
                this.resumeAfter = this.eventRead(firstOrder - 1);
                const checkedAfter = walkedOrders.filter((w) => w.order > firstOrder).map((w) => w.eventId);
                this.settled = { point: this.before, checkedAfter };
            }
        }
        while (this.pending.size > 0) this.walk(this.pending.pop() as ChainedRecord);
        for (const edit of this.edits) {
            if (this.senderEvents.has(idKey(edit.target))) {
                this.problem("edited", null, edit.eventId, `${edit.sender} edited audit event ${edit.target}`);
            }
        }
        const { maxAgeMs = null, now = Date.now() } = this.options;
        if (maxAgeMs !== null && (this.newest === null || now - this.newest.ts > maxAgeMs)) {
            const what = this.newest
                ? `the newest record, seq ${this.newest.seq} at ${new Date(this.newest.ts).toISOString()}, is older than ${maxAgeMs / 1000} s`
                : "the room has no record";
            this.problem("stale", this.newest?.seq ?? null, "", `${what}: the trail is not being written`);
        }
        this.attributeRedactions();
        const problems = this.problems.sort(
            (a, b) => (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER),
        );
        return {
            intact: problems.length === 0,
            records: this.records,
            firstSeq: this.first?.seq ?? null,
            lastSeq: this.last?.seq ?? null,
            firstTs: this.first?.ts ?? null,
            lastTs: this.last?.ts ?? null,
            start: this.start,
            newest: this.newest,
            omittedByPolicy: this.omittedByPolicy,
            unchained: this.unchained,
            duplicates: this.duplicates,
            problems,
        };
    }

    /** Where the next incremental run goes on (after finish()), or null if nothing was walked. */
    public resumePoint(recentCount = 10_000): ResumePoint | null {
        const point = this.settled?.point ?? this.before;
        if (point === null) return null;
        const recent: Record<string, string> = {};
        for (let seq = Math.max(0, point.seq - recentCount + 1); seq <= point.seq; seq++) {
            const hash = this.hashes.get(seq);
            if (hash !== null) recent[seq] = hash;
        }
        return {
            verified: { seq: point.seq, hash: point.hash, recent },
            afterEventId: this.resumeAfter,
            checkedAfter: this.settled?.checkedAfter ?? [],
        };
    }

    /**
     * A redacted audit event has lost its record, so its seq shows only as one missing from the chain. When the
     * redactions and the missing seqs are as many, they are paired in order: one problem names both (linear).
     */
    private attributeRedactions(): void {
        const missing = this.problems.filter((p) => p.kind === "missing");
        if (this.redactions === 0 || this.redactions !== missing.length) return;
        missing.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
        const gone = new Set(missing);
        let i = 0;
        for (const problem of this.problems) {
            if (problem.kind !== "redacted") continue;
            const gap = missing[i++] as Problem;
            problem.seq = gap.seq;
            problem.detail = `the audit event of seq ${gap.seq} was redacted`;
        }
        const kept = this.problems.filter((p) => !gone.has(p));
        this.problems.length = 0;
        this.problems.push(...kept);
    }
}

/** Checks a whole room's events at once (tests, small rooms). */
export function verifyEvents(
    events: Iterable<RoomEvent>,
    sender: string,
    fromSeq = 0,
    options: Omit<VerifyOptions, "fromSeq"> = {},
): Report {
    const verifier = new TrailVerifier(sender, { ...options, fromSeq });
    for (const event of events) verifier.add(event);
    return verifier.finish();
}

/**
 * What a copy of a record shows: its record's fields (but `prev_posted`, which names whatever was posted before it
 * and may differ between two honest posts) with the event's msgtype, body and HTML. Two honest posts of a record
 * are built alike; a copy posted with the appservice token that keeps the chain fields and changes what is shown
 * is not.
 */
function copyFingerprint(event: RoomEvent, record: ChainedRecord): string {
    const { prev_posted: _ignored, ...fields } = record.fields;
    const { msgtype = null, body = null, formatted_body: html = null } = event.content;
    return createHash("sha256").update(stableJson({ fields, msgtype, body, html })).digest("hex");
}

/** JSON with object keys sorted, so equal values give equal text whatever their key order. */
function stableJson(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
    if (value !== null && typeof value === "object") {
        const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
        entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
    }
    return JSON.stringify(value) ?? "null";
}
