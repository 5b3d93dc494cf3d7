/**
 * What `verify` checks of one audit event on its own (README, "Verifying the trail"): each record's hash from
 * its fields (chain v1 or v2), a shown content against what the chain commits to, and the body against the
 * records. Every copy of a record is checked this way; Verifier.ts follows the chain between records.
 */
import { createHash } from "node:crypto";
import type { RoomEvent } from "../devenv/MatrixHttp.js";
import { pythonDumpsJsonText } from "../json/PythonJson.js";
import { expandRecords } from "../modules/audit/DigestMode.js";
import { auditMessageBody, checkpointBody, withheldText } from "../modules/audit/Messages.js";
import { quarantineBody, type QuarantineFields } from "../modules/audit/Quarantine.js";
import { RECORD_KEY } from "../modules/audit/Record.js";
import { recordHash, recordHashV2 } from "./Chain.js";

export type ProblemKind =
    | "missing"
    | "broken_link"
    | "hash_mismatch"
    | "content_mismatch"
    | "body_mismatch"
    | "conflicting_records"
    | "late_copy"
    | "unchained"
    | "unanchored_start"
    | "stale"
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

/** A record of the chain, as one event shows it. */
export interface ChainedRecord {
    eventId: string;
    /** The event's position in the room as read (set by the verifier). */
    order?: number;
    seq: number;
    ts: number;
    hash: string;
    prevHash: string;
    prevPosted: { seq: number; hash: string } | null;
    fields: Record<string, unknown>;
}

export const AUDIT_SENTENCE = / has changed their account data for type .* to: /;

export function isRedacted(event: RoomEvent): boolean {
    const unsigned = (event as { unsigned?: { redacted_because?: unknown } }).unsigned;
    return unsigned?.redacted_because !== undefined || event.content.body === undefined;
}

export function replaces(event: RoomEvent): string | null {
    const relation = event.content["m.relates_to"] as { rel_type?: unknown; event_id?: unknown } | undefined;
    return relation?.rel_type === "m.replace" && typeof relation.event_id === "string" ? relation.event_id : null;
}

const str = (value: unknown): string | null => (typeof value === "string" ? value : null);
const num = (value: unknown): number | null => (typeof value === "number" ? value : null);

function sha256(text: string): string {
    return createHash("sha256").update(text, "utf8").digest("hex");
}

/** The record's kind as the host module chained it. */
function chainKind(fields: Record<string, unknown>): string {
    return fields.kind === "change" && fields.recovered === true ? "recovered" : String(fields.kind);
}

/** The hash a record's fields give (README, "The hash chain"), v1 or v2 as the record says. */
export function linkHash(seq: number, fields: Record<string, unknown>, prevHash: string): string {
    const change = fields.kind === "change";
    const link = {
        seq,
        changeId: String(fields.change_id),
        ts: Number(fields.ts),
        kind: chainKind(fields),
        userId: change || fields.kind === "deactivation" ? String(fields.user_id) : "",
        roomId: change ? str(fields.room_id) : null,
        type: change ? String(fields.type) : "",
        keyedDigest: str(fields.keyed_digest),
        prevHash,
    };
    if (fields.chain_version !== 2) return recordHash(link);
    return recordHashV2({
        ...link,
        contentSize: change ? num(fields.content_size) : null,
        commitment: change ? str(fields.commitment) : null,
    });
}

/** A full change record's shown content against the chain (v2: its commitment and size; v1: its `content_digest`). */
export function contentMatches(fields: Record<string, unknown>): boolean {
    const content = str(fields.content);
    if (fields.kind !== "change" || fields.level !== "full" || content === null) return true;
    if (fields.chain_version === 2) {
        const salt = str(fields.content_salt);
        return (
            salt !== null &&
            fields.commitment === `sha256:${sha256(salt + content)}` &&
            fields.content_size === Buffer.byteLength(content, "utf8")
        );
    }
    return `sha256:${sha256(content)}` === fields.content_digest;
}

/** A record posted as a quarantine notice (README, "Quarantined records"). */
function isQuarantined(fields: Record<string, unknown>): boolean {
    const quarantine = fields.quarantine as { reason?: unknown } | null | undefined;
    return typeof quarantine === "object" && quarantine !== null && typeof quarantine.reason === "string";
}

/** The message line a record says its event shows; null where it cannot be rebuilt (content left out). */
function expectedLine(fields: Record<string, unknown>): string | null {
    if (isQuarantined(fields)) return quarantineBody(fields as unknown as QuarantineFields);
    if (fields.kind === "checkpoint") {
        return checkpointBody({ seq: Number(fields.seq), ts: Number(fields.ts), hash: str(fields.hash) });
    }
    if (fields.kind !== "change") return null;
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

/** Does the event's body say what its records hold (one line per record)? */
function bodyProblem(event: RoomEvent, records: Record<string, unknown>[]): Problem | null {
    // A content that does not match the chain is reported already.
    if (records.some((r) => !contentMatches(r))) return null;
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

function parseChained(event: RoomEvent, fields: unknown): ChainedRecord | null {
    if (typeof fields !== "object" || fields === null) return null;
    const f = fields as Record<string, unknown>;
    const { seq, hash, prev_hash: prevHash, prev_posted: prevPosted } = f;
    if (typeof seq !== "number" || typeof hash !== "string" || typeof prevHash !== "string") return null;
    const posted =
        typeof prevPosted === "object" && prevPosted !== null ? (prevPosted as { seq: number; hash: string }) : null;
    return { eventId: event.event_id, seq, ts: Number(f.ts), hash, prevHash, prevPosted: posted, fields: f };
}

/** The records an audit event holds (a digest's expanded), or null if it has none with a hash chain. */
export function chainedRecordsOf(event: RoomEvent): ChainedRecord[] | null {
    const fields = event.content[RECORD_KEY] as Record<string, unknown> | undefined;
    const inner =
        fields?.kind === "digest" && Array.isArray(fields.records)
            ? expandRecords(fields.records as Record<string, unknown>[])
            : fields
              ? [fields]
              : [];
    const parsed = inner.map((f) => parseChained(event, f));
    if (parsed.length === 0 || parsed.some((r) => r === null)) return null;
    return parsed as ChainedRecord[];
}

/** Problems one event's records have on their own: hashes, contents, and its body. */
export function checkEvent(event: RoomEvent, records: readonly ChainedRecord[], fromSeq: number): Problem[] {
    const problems: Problem[] = [];
    for (const record of records) {
        if (record.seq < fromSeq) continue;
        const at = { seq: record.seq, eventId: event.event_id };
        if (linkHash(record.seq, record.fields, record.prevHash) !== record.hash) {
            problems.push({ kind: "hash_mismatch", ...at, detail: "the record's fields do not give its hash" });
        }
        if (!contentMatches(record.fields)) {
            problems.push({
                kind: "content_mismatch",
                ...at,
                detail: "the content does not match what the chain commits to",
            });
        }
    }
    const body = bodyProblem(
        event,
        records.map((r) => r.fields),
    );
    if (body && (body.seq ?? 0) >= fromSeq) problems.push(body);
    return problems;
}
