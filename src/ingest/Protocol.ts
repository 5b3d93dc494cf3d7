/**
 * The host module → appservice protocol (documented in README.md, "Delivery protocol").
 *
 *   POST /_account_data_audit/v1/changes
 *   Authorization: Bearer <token>
 *   {"changes": [{"id", "seq", "ts", "user_id", "room_id", "type", "content"[, "recovered": true]}, ...],
 *    "follows": 41}
 *
 * An item with `"kind": "gap"` is a gap notice from the host module's crash recovery instead of a change:
 *   {"id", "seq", "ts", "kind": "gap", "gap": {"lost", "keys": [{"user_id", "room_id", "type", "unaccounted",
 *    "latest"}], "stream_positions": {"after", "through"}}}
 *
 * `follows` (optional) is the last seq of the batch the host module sent just before this one, while that
 * one is still unanswered: requests on separate connections may arrive out of order, and the appservice
 * uses it to start them in the host module's order. Absent or null: nothing of the host's is in flight.
 *
 * `content` is the account data's JSON text (a string), exactly as the homeserver recorded it. It travels
 * as text because a JSON object would go through JavaScript's number type on the way in, and an audit
 * trail must not show 1 where the user stored 1.0, or round a 64-bit integer.
 */
import { LosslessObject } from "../json/LosslessJson.js";
import { UNREAD_CONTENT } from "./ContentReader.js";
import type { AuditGapKey, ContentCommitment, PostedRef, TrailInfo } from "../modules/ModuleApi.js";
import type {
    AccountDataChange,
    AuditRecord,
    CheckpointRecord,
    DeactivationRecord,
    GapRecord,
} from "../modules/ModuleHost.js";

export const CHANGES_PATH = "/_account_data_audit/v1/changes";
export const MAX_CHANGES_PER_BATCH = 10_000;

/** A field of the request is wrong; `field` is its path, e.g. `changes[3].user_id`. */
export class BadFieldError extends Error {
    public constructor(
        public readonly field: string,
        problem: string,
    ) {
        super(`${field}: ${problem}`);
        this.name = "BadFieldError";
    }
}

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
    return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

const HEX64 = /^[0-9a-f]{64}$/;

function parseHash(value: unknown, field: string): string {
    if (typeof value !== "string" || !HEX64.test(value)) {
        throw new BadFieldError(field, "must be 64 lower-case hex digits (SHA-256)");
    }
    return value;
}

interface Header extends TrailInfo {
    id: string;
    seq: number;
    ts: number;
}

/** The fields every record has: id, seq, ts, and (from host modules with them) keyed digest and chain. */
function parseHeader(raw: Record<string, unknown>, field: string): Header {
    const { id, seq, ts, keyed_digest: keyedDigest = null, chain = null } = raw;
    if (typeof id !== "string" || id.length === 0 || id.length > 128 || !/^[A-Za-z0-9._~-]+$/.test(id)) {
        throw new BadFieldError(`${field}.id`, "must be 1-128 characters of A-Z a-z 0-9 . _ ~ -");
    }
    if (!isCount(seq)) throw new BadFieldError(`${field}.seq`, "must be a non-negative integer");
    if (!isCount(ts)) throw new BadFieldError(`${field}.ts`, "must be a timestamp in milliseconds");
    if (keyedDigest !== null) parseHash(keyedDigest, `${field}.keyed_digest`);
    if (chain !== null && !isObject(chain)) throw new BadFieldError(`${field}.chain`, "must be {prev, hash}");
    return {
        id,
        seq,
        ts,
        keyedDigest: keyedDigest as string | null,
        chain: chain
            ? {
                  prevHash: parseHash(chain.prev, `${field}.chain.prev`),
                  hash: parseHash(chain.hash, `${field}.chain.hash`),
                  version: parseChainVersion(chain.version, `${field}.chain.version`),
              }
            : null,
    };
}

function parseChainVersion(value: unknown, field: string): 1 | 2 {
    if (value === undefined || value === null || value === 1) return 1;
    if (value === 2) return 2;
    throw new BadFieldError(field, "must be 1 or 2 (absent: 1)");
}

const COMMITMENT = /^sha256:[0-9a-f]{64}$/;
const SALT = /^[0-9a-f]{32}$/;

/** A v2 change's commitment to its content (content_size, commitment, salt), or null where absent. */
function parseCommitment(raw: Record<string, unknown>, field: string): ContentCommitment | null {
    const { content_size: size, commitment, salt } = raw;
    if (size === undefined && commitment === undefined && salt === undefined) return null;
    if (!isCount(size)) throw new BadFieldError(`${field}.content_size`, "must be a non-negative integer");
    if (typeof commitment !== "string" || !COMMITMENT.test(commitment)) {
        throw new BadFieldError(`${field}.commitment`, 'must be "sha256:" and 64 lower-case hex digits');
    }
    if (typeof salt !== "string" || !SALT.test(salt)) {
        throw new BadFieldError(`${field}.salt`, "must be 32 lower-case hex digits");
    }
    return { size, commitment, salt };
}

/** A posted record's reference ({seq, hash}), or null. */
export function parsePostedRef(value: unknown, field: string): PostedRef | null {
    if (value === null || value === undefined) return null;
    if (!isObject(value) || !isCount(value.seq)) throw new BadFieldError(field, "must be null or {seq, hash}");
    return { seq: value.seq, hash: parseHash(value.hash, `${field}.hash`) };
}

/**
 * The checks on IDs and types are no stricter than what Synapse lets a client store (README, "Delivery
 * protocol"): a change we refused would hold up every change behind it. Synapse's `RoomID.is_valid` takes any
 * localpart (spaces, non-ASCII, control characters, any length) and its user IDs include legacy ones; the type
 * is any string, also empty. So: a sigil, and a string.
 */
function isUserIdLike(value: unknown): value is string {
    return typeof value === "string" && value.startsWith("@");
}

function isRoomIdLike(value: unknown): value is string {
    return typeof value === "string" && value.startsWith("!");
}

/** user_id, room_id and type of a change or of a gap notice's key. */
function parseKey(
    raw: Record<string, unknown>,
    field: string,
): { userId: string; roomId: string | null; type: string } {
    const { user_id: userId, room_id: roomId, type } = raw;
    if (!isUserIdLike(userId)) throw new BadFieldError(`${field}.user_id`, "must be a user ID (@…)");
    if (roomId !== null && !isRoomIdLike(roomId)) {
        throw new BadFieldError(`${field}.room_id`, "must be a room ID (!…) or null");
    }
    if (typeof type !== "string") throw new BadFieldError(`${field}.type`, "must be a string");
    return { userId, roomId, type };
}

function parseGapKey(raw: unknown, field: string): AuditGapKey {
    if (!isObject(raw)) throw new BadFieldError(field, "must be an object");
    const { unaccounted, latest } = raw;
    if (!isCount(unaccounted)) throw new BadFieldError(`${field}.unaccounted`, "must be a non-negative integer");
    if (latest !== "recovered" && latest !== "changed_after_restart") {
        throw new BadFieldError(`${field}.latest`, 'must be "recovered" or "changed_after_restart"');
    }
    return { ...parseKey(raw, field), unaccounted, latest };
}

function parseDeactivation(raw: Record<string, unknown>, field: string): DeactivationRecord {
    const header = parseHeader(raw, field);
    const { user_id: userId, deactivated, by_admin: byAdmin } = raw;
    if (!isUserIdLike(userId)) throw new BadFieldError(`${field}.user_id`, "must be a user ID (@…)");
    if (typeof deactivated !== "boolean") throw new BadFieldError(`${field}.deactivated`, "must be a boolean");
    if (typeof byAdmin !== "boolean") throw new BadFieldError(`${field}.by_admin`, "must be a boolean");
    return { kind: "deactivation", ...header, userId, deactivated, byAdmin };
}

function parseGap(raw: Record<string, unknown>, field: string): GapRecord {
    const header = parseHeader(raw, field);
    const gap = raw.gap;
    if (!isObject(gap)) throw new BadFieldError(`${field}.gap`, "must be an object");
    const { lost, keys, stream_positions: positions } = gap;
    if (!isCount(lost)) throw new BadFieldError(`${field}.gap.lost`, "must be a non-negative integer");
    if (!Array.isArray(keys)) throw new BadFieldError(`${field}.gap.keys`, "must be a list");
    if (!isObject(positions) || !isCount(positions.after) || !isCount(positions.through)) {
        throw new BadFieldError(`${field}.gap.stream_positions`, "must be {after, through} positions");
    }
    return {
        kind: "gap",
        ...header,
        lost,
        keys: keys.map((key, i) => parseGapKey(key, `${field}.gap.keys[${i}]`)),
        streamPositions: { after: positions.after, through: positions.through },
    };
}

function parseRecord(raw: unknown, field: string): AuditRecord {
    if (!isObject(raw)) throw new BadFieldError(field, "must be an object");
    if (raw.kind === "gap") return parseGap(raw, field);
    if (raw.kind === "deactivation") return parseDeactivation(raw, field);
    if (raw.kind === "checkpoint") return { kind: "checkpoint", ...parseHeader(raw, field) } as CheckpointRecord;
    if (raw.kind !== undefined && raw.kind !== "change") {
        throw new BadFieldError(
            `${field}.kind`,
            'must be "change" (the default), "gap", "deactivation" or "checkpoint"',
        );
    }
    return parseChange(raw, field);
}

function parseChange(raw: Record<string, unknown>, field: string): AccountDataChange {
    const header = parseHeader(raw, field);
    const { userId, roomId, type } = parseKey(raw, field);
    const { content, recovered = false, digest_group: digestGroup = null, source: rawSource } = raw;
    if (typeof recovered !== "boolean") throw new BadFieldError(`${field}.recovered`, "must be a boolean");
    // Where the host module found the change: "callback" (the default), "tags" or "push_rules" (polled).
    if (rawSource !== undefined && typeof rawSource !== "string") {
        throw new BadFieldError(`${field}.source`, "must be a string");
    }
    const source = rawSource === undefined || rawSource === "callback" ? {} : { source: rawSource };
    if (digestGroup !== null && (!isCount(digestGroup) || digestGroup > header.seq)) {
        throw new BadFieldError(`${field}.digest_group`, "must be null or the seq of the digest's first change");
    }
    const committed = parseCommitment(raw, field);
    const omitted = raw.content_omitted;
    if (content === null && isObject(omitted) && isCount(omitted.size)) {
        // Too large for any request the appservice takes, or over the host module's max_content_bytes: the host
        // module sent it without its content.
        return {
            ...header,
            ...source,
            recovered,
            contentJson: "",
            committed,
            userId,
            roomId,
            type,
            digestGroup,
            content: new LosslessObject(),
            contentSize: omitted.size,
            contentError:
                omitted.reason === "over_cap"
                    ? `the content is larger than the host module delivers (${omitted.size} bytes; see max_content_bytes)`
                    : `the change is too large to deliver (${omitted.size} bytes of content; see ingest.max_body_bytes)`,
        };
    }
    if (typeof content !== "string") {
        throw new BadFieldError(`${field}.content`, "must be a string holding the content's JSON text (an object)");
    }
    // Read when the change is recorded (ContentReader): content the appservice cannot read is then this change's
    // problem, not the batch's (it is quarantined).
    return {
        ...header,
        ...source,
        recovered,
        contentJson: content,
        committed,
        userId,
        roomId,
        type,
        digestGroup,
        content: UNREAD_CONTENT,
    };
}

export interface ChangeBatch {
    changes: AuditRecord[];
    /** The last seq of the batch this one must start after, or null. */
    follows: number | null;
    /** The last record the appservice reported posted when it last acknowledged (see README), or null. */
    postedHead: PostedRef | null;
    /** The last record the host module had acknowledged ({seq, chain hash}), or null. */
    ackedHead: PostedRef | null;
    /** How often the host module writes a checkpoint when idle (seconds): a batch is due at least that often. */
    checkpointIntervalSeconds: number | null;
    /**
     * The sinks this batch is for, when not the room (`sinks_only`): the host module feeds the export while the
     * room refuses records (README, "The JSONL export"). Null: every sink, the room included.
     */
    sinksOnly: string[] | null;
    /**
     * The same batch sent again because its answer said it was still being posted (`again`): it joins the work
     * under way instead of starting afresh (ChangeProcessor).
     */
    again: boolean;
}

/** Validates a parsed request body; throws BadFieldError naming the first wrong field. */
export function parseChangeBatch(body: unknown): ChangeBatch {
    if (!isObject(body)) throw new BadFieldError("body", "must be a JSON object");
    const { changes, follows = null, posted_head: postedHead = null, acked_head: ackedHead = null } = body;
    const { checkpoint_interval_seconds: interval = null, sinks_only: sinksOnly = null, again = false } = body;
    if (typeof again !== "boolean") throw new BadFieldError("again", "must be a boolean");
    if (sinksOnly !== null && !(Array.isArray(sinksOnly) && sinksOnly.every((s) => typeof s === "string"))) {
        throw new BadFieldError("sinks_only", "must be null or a list of sink names");
    }
    if (interval !== null && (typeof interval !== "number" || !Number.isFinite(interval) || interval <= 0)) {
        throw new BadFieldError("checkpoint_interval_seconds", "must be null or a positive number of seconds");
    }
    if (!Array.isArray(changes)) throw new BadFieldError("changes", "must be a list");
    if (changes.length > MAX_CHANGES_PER_BATCH) {
        throw new BadFieldError("changes", `must hold at most ${MAX_CHANGES_PER_BATCH} changes`);
    }
    const parsed = changes.map((raw, i) => parseRecord(raw, `changes[${i}]`));
    for (let i = 1; i < parsed.length; i++) {
        if ((parsed[i] as AuditRecord).seq <= (parsed[i - 1] as AuditRecord).seq) {
            throw new BadFieldError(`changes[${i}].seq`, "must be greater than the previous change's seq");
        }
    }
    if (follows !== null) {
        const first = parsed[0]?.seq ?? Number.MAX_SAFE_INTEGER;
        if (typeof follows !== "number" || !Number.isSafeInteger(follows) || follows < 0 || follows >= first) {
            throw new BadFieldError("follows", "must be null or a seq lower than the first change's");
        }
    }
    return {
        changes: parsed,
        follows,
        postedHead: parsePostedRef(postedHead, "posted_head"),
        ackedHead: parsePostedRef(ackedHead, "acked_head"),
        checkpointIntervalSeconds: interval,
        sinksOnly: sinksOnly as string[] | null,
        again,
    };
}
