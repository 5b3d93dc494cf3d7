/**
 * The structured data on every audit event, under one namespaced key, for tools that read the audit room: what
 * changed, how much of it the room shows, and hashes to check it against. Documented in README ("The audit
 * record"). Content travels as JSON text, never as an object: account data may hold floats and integers beyond
 * 2^53, which Synapse refuses in event content (and JavaScript numbers would round).
 */
import { createHash } from "node:crypto";
import type { AuditCheckpoint, AuditGap, ChangeInfo, TrailInfo, UserDeactivation } from "../ModuleApi.js";
import type { AuditLevel } from "./Policy.js";

export const RECORD_KEY = "net.matrix_account_data_audit.record";
export const RECORD_VERSION = 1;

export function sha256Hex(text: string): string {
    return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * The tamper-evident trail's fields (README, "The hash chain"): the keyed digest the chain covers, the chain
 * link, and the record the room shows before this one. Absent from records of host modules without a chain.
 */
function trailFields(info: TrailInfo): Record<string, unknown> {
    if (info.chain === null) return info.keyedDigest !== null ? { keyed_digest: info.keyedDigest } : {};
    return {
        ...(info.chain.version === 2 ? { chain_version: 2 } : {}),
        keyed_digest: info.keyedDigest,
        prev_hash: info.chain.prevHash,
        hash: info.chain.hash,
        prev_posted: info.prevPosted ? { seq: info.prevPosted.seq, hash: info.prevPosted.hash } : null,
    };
}

export interface ChangeFacts extends ChangeInfo {
    /** Where the host module found the change (absent: its account-data callback). */
    source?: string;
    userId: string;
    roomId: string | null;
    type: string;
}

/**
 * The record of a change shown at `level`. `content_digest` is the plain SHA-256 of the JSON text where the
 * room shows it, the keyed digest where it does not (a plain hash of a low-entropy value is as good as the
 * value). `withContent: false` leaves the content out of a full record that would not fit in one event.
 */
export function changeRecord(
    change: ChangeFacts,
    level: Exclude<AuditLevel, "none">,
    withContent = true,
): Record<string, unknown> {
    const contentDigest =
        level === "full"
            ? `sha256:${sha256Hex(change.contentJson)}`
            : change.keyedDigest !== null
              ? `hmac-sha256:${change.keyedDigest}`
              : null;
    const committed = change.committed ?? null;
    const shown = level === "full" && withContent;
    return {
        version: RECORD_VERSION,
        kind: "change",
        seq: change.seq,
        change_id: change.id,
        ts: change.ts,
        user_id: change.userId,
        room_id: change.roomId,
        type: change.type,
        level,
        recovered: change.recovered,
        // Only for changes the host module polled from Synapse's tables (room tags, push rules).
        ...(change.source !== undefined && change.source !== "callback" ? { source: change.source } : {}),
        content_size: committed?.size ?? Buffer.byteLength(change.contentJson, "utf8"),
        content_digest: contentDigest,
        ...(level !== "full" ? {} : withContent ? { content: change.contentJson } : { content_omitted: "too_large" }),
        // The salt only where the content is shown: with it, anyone can check the content against the chain;
        // without it, the commitment tells nothing about a withheld value.
        ...(committed ? { commitment: committed.commitment, ...(shown ? { content_salt: committed.salt } : {}) } : {}),
        ...trailFields(change),
    };
}

export function checkpointRecord(checkpoint: AuditCheckpoint): Record<string, unknown> {
    return {
        version: RECORD_VERSION,
        kind: "checkpoint",
        seq: checkpoint.seq,
        change_id: checkpoint.id,
        ts: checkpoint.ts,
        ...trailFields(checkpoint),
    };
}

export function deactivationRecord(record: UserDeactivation): Record<string, unknown> {
    return {
        version: RECORD_VERSION,
        kind: "deactivation",
        seq: record.seq,
        change_id: record.id,
        ts: record.ts,
        user_id: record.userId,
        deactivated: record.deactivated,
        by_admin: record.byAdmin,
        ...trailFields(record),
    };
}

/** Keys listed in a gap record (the event must stay under 64 KiB); `keys_total` counts them all. */
const MAX_GAP_KEYS_RECORDED = 100;

export function gapRecord(gap: AuditGap): Record<string, unknown> {
    return {
        version: RECORD_VERSION,
        kind: "gap",
        seq: gap.seq,
        change_id: gap.id,
        ts: gap.ts,
        lost: gap.lost,
        keys_total: gap.keys.length,
        keys: gap.keys.slice(0, MAX_GAP_KEYS_RECORDED).map((key) => ({
            user_id: key.userId,
            room_id: key.roomId,
            type: key.type,
            unaccounted: key.unaccounted,
            latest: key.latest,
        })),
        stream_positions: { after: gap.streamPositions.after, through: gap.streamPositions.through },
        ...trailFields(gap),
    };
}
