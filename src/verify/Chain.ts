/**
 * The host module's hash chain, recomputed from what the audit room publishes (README, "The hash chain"; the
 * host module's twin is synapse-module/src/synapse_account_data_audit/chain.py, and both test suites check
 * the README's worked examples). Version 2, every record written since the upgrade:
 *   hash = SHA-256( JSON ["v2", seq, change_id, ts, kind, user_id, room_id, type, content_size, commitment,
 *                         keyed_digest, prev_hash] )
 * Version 1, records written before it (a record without a chain version is v1):
 *   hash = SHA-256( JSON ["v1", seq, change_id, ts, kind, user_id, room_id, type, content_digest, prev_hash] )
 * Both compact, every character outside printable ASCII escaped as \uXXXX (Python's json.dumps with
 * separators=(",", ":")).
 */
import { createHash } from "node:crypto";
import { pythonDumpsString } from "../json/PythonJson.js";

export const GENESIS = "0".repeat(64);

export interface LinkFields {
    seq: number;
    changeId: string;
    ts: number;
    /** As the host module stores it: change, recovered, gap or deactivation. */
    kind: string;
    userId: string;
    roomId: string | null;
    type: string;
    keyedDigest: string | null;
    prevHash: string;
}

function encode(value: string | number | null): string {
    if (value === null) return "null";
    return typeof value === "number" ? String(value) : pythonDumpsString(value);
}

export function canonical(link: LinkFields): string {
    const contentDigest = link.keyedDigest !== null ? `hmac-sha256:${link.keyedDigest}` : null;
    const fields = [
        "v1",
        link.seq,
        link.changeId,
        link.ts,
        link.kind,
        link.userId,
        link.roomId,
        link.type,
        contentDigest,
        link.prevHash,
    ];
    return `[${fields.map(encode).join(",")}]`;
}

export function recordHash(link: LinkFields): string {
    return createHash("sha256").update(canonical(link), "ascii").digest("hex");
}

/** What a v2 link adds: the content's size and commitment (change and recovered records; null otherwise). */
export interface LinkFieldsV2 extends LinkFields {
    contentSize: number | null;
    commitment: string | null;
}

/**
 * The v2 canonical form (README, "The hash chain"):
 *   ["v2", seq, change_id, ts, kind, user_id, room_id, type, content_size, commitment, keyed_digest, prev_hash]
 * with `keyed_digest` as "hmac-sha256:<hex>" (or null) and `commitment` as "sha256:<hex>" (or null).
 */
export function canonicalV2(link: LinkFieldsV2): string {
    const keyed = link.keyedDigest !== null ? `hmac-sha256:${link.keyedDigest}` : null;
    const fields = [
        "v2",
        link.seq,
        link.changeId,
        link.ts,
        link.kind,
        link.userId,
        link.roomId,
        link.type,
        link.contentSize,
        link.commitment,
        keyed,
        link.prevHash,
    ];
    return `[${fields.map(encode).join(",")}]`;
}

export function recordHashV2(link: LinkFieldsV2): string {
    return createHash("sha256").update(canonicalV2(link), "ascii").digest("hex");
}

/**
 * A content record's commitment: "sha256:" + SHA-256 of its salt (32 hex digits) followed by its content's
 * JSON text, as UTF-8. Anyone shown the content and the salt can check it against the chain; without the
 * salt, a withheld content cannot be guessed through it.
 */
export function contentCommitment(salt: string, content: string): string {
    const hex = createHash("sha256")
        .update(salt + content, "utf8")
        .digest("hex");
    return `sha256:${hex}`;
}

/** Bytes of a content's JSON text in UTF-8: the `content_size` a v2 link covers. */
export function contentSize(content: string): number {
    return Buffer.byteLength(content, "utf8");
}
