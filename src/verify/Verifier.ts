/**
 * Checks an audit room's trail from its events (README, "Verifying the trail"): recomputes every record's hash,
 * checks each full record's content against its digest and its body against its record, follows the chain
 * from record to record, and reports what breaks it: missing records, broken links, redacted or edited audit
 * events, look-alike messages from anyone but the sender. Duplicates (one change posted twice) are reported
 * as information only. Pure: RoomReader fetches the events.
 */
import { createHash } from "node:crypto";
import { pythonDumpsJsonText } from "../json/PythonJson.js";
import type { RoomEvent } from "../devenv/MatrixHttp.js";
import { auditMessageBody, withheldText } from "../modules/audit/Messages.js";
import { expandRecords } from "../modules/audit/Digest.js";
import { quarantineBody, type QuarantineFields } from "../modules/audit/Quarantine.js";
import { RECORD_KEY } from "../modules/audit/Record.js";
import { recordHash } from "./Chain.js";

export type ProblemKind =
    | "missing"
    | "broken_link"
    | "hash_mismatch"
    | "content_mismatch"
    | "body_mismatch"
    | "conflicting_records"
    | "redacted"
    | "edited"
    | "look_alike"
    | "malformed";

export interface Problem {
    kind: ProblemKind;
    seq: number | null;
    eventId: string;
    detail: string;
}

export interface Report {
    intact: boolean;
    records: number;
    firstSeq: number | null;
    lastSeq: number | null;
    firstTs: number | null;
    lastTs: number | null;
    /** Seqs between posted records that the next one declares left out by the audit policy. */
    omittedByPolicy: number;
    /** Audit events from before the hash chain (older versions), not checked. */
    unchained: number;
    duplicates: { seq: number; eventIds: string[] }[];
    problems: Problem[];
}

interface ChainedRecord {
    event: RoomEvent;
    seq: number;
    hash: string;
    prevHash: string;
    prevPosted: { seq: number; hash: string } | null;
    fields: Record<string, unknown>;
}

const AUDIT_SENTENCE = / has changed their account data for type .* to: /;

function isRedacted(event: RoomEvent): boolean {
    const unsigned = (event as { unsigned?: { redacted_because?: unknown } }).unsigned;
    return unsigned?.redacted_because !== undefined || event.content.body === undefined;
}

function replaces(event: RoomEvent): string | null {
    const relation = event.content["m.relates_to"] as { rel_type?: unknown; event_id?: unknown } | undefined;
    return relation?.rel_type === "m.replace" && typeof relation.event_id === "string" ? relation.event_id : null;
}

const str = (value: unknown): string | null => (typeof value === "string" ? value : null);

/** The record's kind as the host module chained it. */
function chainKind(fields: Record<string, unknown>): string {
    return fields.kind === "change" && fields.recovered === true ? "recovered" : String(fields.kind);
}

function linkHash(seq: number, fields: Record<string, unknown>, prevHash: string): string {
    const change = fields.kind === "change";
    return recordHash({
        seq,
        changeId: String(fields.change_id),
        ts: Number(fields.ts),
        kind: chainKind(fields),
        userId: change || fields.kind === "deactivation" ? String(fields.user_id) : "",
        roomId: change ? str(fields.room_id) : null,
        type: change ? String(fields.type) : "",
        keyedDigest: str(fields.keyed_digest),
        prevHash,
    });
}

/** Problems a record has on its own: its hash, and its content against its digest. */
function checkRecord(record: ChainedRecord): Problem[] {
    const { fields, event, seq } = record;
    const problems: Problem[] = [];
    const problem = (kind: ProblemKind, detail: string) =>
        problems.push({ kind, seq, eventId: event.event_id, detail });
    if (linkHash(seq, fields, record.prevHash) !== record.hash) {
        problem("hash_mismatch", "the record's fields do not give its hash");
    }
    if (!contentMatches(fields)) problem("content_mismatch", "the content does not match its digest");
    return problems;
}

/** A full change record's content against its digest (true where there is nothing to check). */
function contentMatches(fields: Record<string, unknown>): boolean {
    const content = str(fields.content);
    if (fields.kind !== "change" || fields.level !== "full" || content === null) return true;
    return `sha256:${createHash("sha256").update(content, "utf8").digest("hex")}` === fields.content_digest;
}

/** A record posted as a quarantine notice (README, "Quarantined records"). */
function isQuarantined(fields: Record<string, unknown>): boolean {
    const quarantine = fields.quarantine as { reason?: unknown } | null | undefined;
    return typeof quarantine === "object" && quarantine !== null && typeof quarantine.reason === "string";
}

/** The message line a record says its event shows; null where it cannot be rebuilt (content left out). */
function expectedLine(fields: Record<string, unknown>): string | null {
    if (isQuarantined(fields)) return quarantineBody(fields as unknown as QuarantineFields);
    const user = String(fields.user_id);
    const room = str(fields.room_id);
    const type = String(fields.type);
    const content = str(fields.content);
    if (fields.level === "full")
        return content === null ? null : auditMessageBody(user, room, type, pythonDumpsJsonText(content));
    if (fields.level === "metadata") {
        return auditMessageBody(user, room, type, withheldText(Number(fields.content_size), str(fields.keyed_digest)));
    }
    return null;
}

/** Does the event's body say what its change records hold (one line per record)? */
function bodyProblem(event: RoomEvent, records: Record<string, unknown>[]): Problem | null {
    // A content that does not match its digest is reported already.
    if (records.some((r) => (r.kind !== "change" && !isQuarantined(r)) || !contentMatches(r))) return null;
    const lines = records.map(expectedLine);
    if (lines.some((l) => l === null) || event.content.body === lines.join("\n")) return null;
    const seq = typeof records[0]?.seq === "number" ? records[0].seq : null;
    return {
        kind: "body_mismatch",
        seq,
        eventId: event.event_id,
        detail: "the message body does not say what the record holds",
    };
}

function parseChained(event: RoomEvent, fields: Record<string, unknown>): ChainedRecord | null {
    const { seq, hash, prev_hash: prevHash, prev_posted: prevPosted } = fields;
    if (typeof seq !== "number" || typeof hash !== "string" || typeof prevHash !== "string") return null;
    const posted =
        typeof prevPosted === "object" && prevPosted !== null ? (prevPosted as { seq: number; hash: string }) : null;
    return { event, seq, hash, prevHash, prevPosted: posted, fields };
}

/**
 * A redacted audit event has lost its record, so its seq shows only as one missing from the chain. When the
 * redactions and the missing seqs are as many, they are paired in order: one problem names both.
 */
function attributeRedactions(problems: Problem[]): void {
    const redacted = problems.filter((p) => p.kind === "redacted");
    const missing = problems.filter((p) => p.kind === "missing").sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    if (redacted.length === 0 || redacted.length !== missing.length) return;
    for (const [i, problem] of redacted.entries()) {
        const gap = missing[i] as Problem;
        problem.seq = gap.seq;
        problem.detail = `the audit event of seq ${gap.seq} was redacted`;
        problems.splice(problems.indexOf(gap), 1);
    }
}

export function verifyEvents(events: readonly RoomEvent[], sender: string, fromSeq = 0): Report {
    const problems: Problem[] = [];
    const bySeq = new Map<number, ChainedRecord[]>();
    const auditEventIds = new Set<string>();
    let unchained = 0;
    for (const event of events) {
        if (event.type !== "m.room.message") continue;
        if (event.sender === sender) auditEventIds.add(event.event_id);
    }
    for (const event of events) {
        if (event.type === "m.room.redaction") continue; // the redacted event shows it (redacted_because)
        const target = replaces(event);
        if (target !== null && auditEventIds.has(target)) {
            problems.push({
                kind: "edited",
                seq: null,
                eventId: event.event_id,
                detail: `${event.sender} edited audit event ${target}`,
            });
            continue;
        }
        if (event.sender !== sender) {
            if (AUDIT_SENTENCE.test(String(event.content.body)) || RECORD_KEY in event.content) {
                problems.push({
                    kind: "look_alike",
                    seq: null,
                    eventId: event.event_id,
                    detail: `an audit-like message from ${event.sender}`,
                });
            }
            continue;
        }
        if (isRedacted(event)) {
            problems.push({
                kind: "redacted",
                seq: null,
                eventId: event.event_id,
                detail: "an audit event was redacted",
            });
            continue;
        }
        const fields = event.content[RECORD_KEY] as Record<string, unknown> | undefined;
        const inner =
            fields?.kind === "digest" && Array.isArray(fields.records)
                ? expandRecords(fields.records as Record<string, unknown>[])
                : fields
                  ? [fields]
                  : [];
        const parsed = inner.map((f) => (typeof f === "object" && f !== null ? parseChained(event, f) : null));
        if (parsed.length === 0 || parsed.some((r) => r === null)) {
            unchained++;
            continue;
        }
        const body = bodyProblem(event, inner);
        if (body && (body.seq ?? 0) >= fromSeq) problems.push(body);
        for (const record of parsed as ChainedRecord[]) {
            if (record.seq < fromSeq) continue;
            bySeq.set(record.seq, [...(bySeq.get(record.seq) ?? []), record]);
        }
    }

    const duplicates: Report["duplicates"] = [];
    const records: ChainedRecord[] = [];
    for (const [seq, copies] of [...bySeq].sort((a, b) => a[0] - b[0])) {
        const first = copies[0] as ChainedRecord;
        if (copies.length > 1) {
            if (copies.some((c) => c.hash !== first.hash)) {
                problems.push({
                    kind: "conflicting_records",
                    seq,
                    eventId: copies[1]?.event.event_id ?? "",
                    detail: "two different records with one seq",
                });
            } else {
                duplicates.push({ seq, eventIds: copies.map((c) => c.event.event_id) });
            }
        }
        records.push(first);
    }

    let omittedByPolicy = 0;
    for (const [i, record] of records.entries()) {
        problems.push(...checkRecord(record));
        const before = records[i - 1];
        if (!before) continue;
        const declared = record.prevPosted;
        if (record.seq === before.seq + 1 && record.prevHash !== before.hash) {
            problems.push({
                kind: "broken_link",
                seq: record.seq,
                eventId: record.event.event_id,
                detail: `prev_hash is not the hash of seq ${before.seq}`,
            });
        }
        if (declared === null) {
            // No claim about what came before (the appservice did not see it all): seqs in between are missing.
            if (record.seq > before.seq + 1) {
                problems.push({
                    kind: "missing",
                    seq: before.seq + 1,
                    eventId: record.event.event_id,
                    detail: `seqs ${before.seq + 1}-${record.seq - 1} are not in the room, and no record says why`,
                });
            }
        } else if (declared.seq === before.seq && declared.hash === before.hash) {
            omittedByPolicy += record.seq - before.seq - 1;
        } else if (declared.seq > before.seq) {
            problems.push({
                kind: "missing",
                seq: declared.seq,
                eventId: record.event.event_id,
                detail: `seq ${declared.seq} (and any posted record after seq ${before.seq}) is not in the room`,
            });
        } else {
            problems.push({
                kind: "broken_link",
                seq: record.seq,
                eventId: record.event.event_id,
                detail: `says the record before it is seq ${declared.seq}, but the room shows seq ${before.seq}`,
            });
        }
    }

    attributeRedactions(problems);
    const first = records[0];
    const last = records.at(-1);
    problems.sort((a, b) => (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER));
    return {
        intact: problems.length === 0,
        records: records.length,
        firstSeq: first?.seq ?? null,
        lastSeq: last?.seq ?? null,
        firstTs: first ? Number(first.fields.ts) : null,
        lastTs: last ? Number(last.fields.ts) : null,
        omittedByPolicy,
        unchained,
        duplicates,
        problems,
    };
}
