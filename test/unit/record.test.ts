/**
 * The structured record on every audit event (README, "The audit record"): each kind's fields, exactly, since
 * tools and `verify` read them.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { AuditGap } from "../../src/modules/ModuleApi.js";
import {
    type ChangeFacts,
    changeRecord,
    checkpointRecord,
    deactivationRecord,
    gapRecord,
    RECORD_KEY,
    RECORD_VERSION,
} from "../../src/modules/audit/Record.js";

const H = "a".repeat(64);
const P = "b".repeat(64);
const K = "c".repeat(64);
const SALT = "d".repeat(32);
const sha = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

const CHANGE: ChangeFacts = {
    id: "c1",
    seq: 7,
    ts: 1000,
    recovered: false,
    contentJson: '{"k":"\\u00e9"}',
    userId: "@a:x",
    roomId: "!r:x",
    type: "m.t",
    keyedDigest: K,
    chain: { prevHash: P, hash: H, version: 2 },
    prevPosted: { seq: 5, hash: P },
    committed: { size: 14, commitment: `sha256:${H}`, salt: SALT },
};

describe("a change's record", () => {
    it("holds, in full, the content, its plain digest, the commitment with its salt, and the chain fields", () => {
        expect(RECORD_KEY).toBe("net.matrix_account_data_audit.record");
        expect(changeRecord(CHANGE, "full")).toEqual({
            version: RECORD_VERSION,
            kind: "change",
            seq: 7,
            change_id: "c1",
            ts: 1000,
            user_id: "@a:x",
            room_id: "!r:x",
            type: "m.t",
            level: "full",
            recovered: false,
            content_size: 14,
            content_digest: `sha256:${sha(CHANGE.contentJson)}`,
            content: CHANGE.contentJson,
            commitment: `sha256:${H}`,
            content_salt: SALT,
            chain_version: 2,
            keyed_digest: K,
            prev_hash: P,
            hash: H,
            prev_posted: { seq: 5, hash: P },
        });
    });

    it("as metadata, holds the keyed digest in place of the content, and never the salt", () => {
        const record = changeRecord(CHANGE, "metadata");
        expect(record).toMatchObject({
            level: "metadata",
            content_digest: `hmac-sha256:${K}`,
            commitment: `sha256:${H}`,
        });
        expect(record).not.toHaveProperty("content");
        expect(record).not.toHaveProperty("content_salt");
        expect(record).not.toHaveProperty("content_omitted");
        expect(changeRecord({ ...CHANGE, keyedDigest: null }, "metadata").content_digest).toBeNull();
    });

    it("says a full content too large for the event was left out, and then keeps its salt out too", () => {
        const record = changeRecord(CHANGE, "full", false);
        expect(record).toMatchObject({ content_omitted: "too_large", commitment: `sha256:${H}` });
        expect(record).not.toHaveProperty("content");
        expect(record).not.toHaveProperty("content_salt");
    });

    it("measures the content in UTF-8 bytes when the chain commits to no size", () => {
        const record = changeRecord({ ...CHANGE, committed: null, contentJson: '{"k":"é"}' }, "full");
        expect(record.content_size).toBe(10);
        expect(record).not.toHaveProperty("commitment");
    });

    it("names where a polled change came from, and leaves the callback out", () => {
        expect(changeRecord({ ...CHANGE, source: "tags" }, "full").source).toBe("tags");
        expect(changeRecord({ ...CHANGE, source: "callback" }, "full")).not.toHaveProperty("source");
        expect(changeRecord(CHANGE, "full")).not.toHaveProperty("source");
    });

    it("of chain v1 has no chain version, and a first posted record has no predecessor", () => {
        const record = changeRecord({ ...CHANGE, chain: { prevHash: P, hash: H }, prevPosted: null }, "full");
        expect(record).not.toHaveProperty("chain_version");
        expect(record).toMatchObject({ prev_hash: P, hash: H, prev_posted: null });
    });

    it("of a host module without a chain has only its keyed digest, if any", () => {
        const record = changeRecord({ ...CHANGE, chain: null }, "full");
        expect(record.keyed_digest).toBe(K);
        for (const field of ["prev_hash", "hash", "prev_posted", "chain_version"]) {
            expect(record).not.toHaveProperty(field);
        }
        expect(changeRecord({ ...CHANGE, chain: null, keyedDigest: null }, "full")).not.toHaveProperty("keyed_digest");
    });
});

describe("the other records", () => {
    const trail = { keyedDigest: null, chain: { prevHash: P, hash: H }, prevPosted: null };

    it("a checkpoint's", () => {
        expect(checkpointRecord({ id: "k", seq: 9, ts: 5, ...trail })).toEqual({
            version: 1,
            kind: "checkpoint",
            seq: 9,
            change_id: "k",
            ts: 5,
            keyed_digest: null,
            prev_hash: P,
            hash: H,
            prev_posted: null,
        });
    });

    it("a deactivation's", () => {
        expect(
            deactivationRecord({ id: "d", seq: 3, ts: 4, userId: "@a:x", deactivated: false, byAdmin: true, ...trail }),
        ).toEqual({
            version: 1,
            kind: "deactivation",
            seq: 3,
            change_id: "d",
            ts: 4,
            user_id: "@a:x",
            deactivated: false,
            by_admin: true,
            keyed_digest: null,
            prev_hash: P,
            hash: H,
            prev_posted: null,
        });
    });

    it("a gap notice's, listing at most 100 keys and counting them all", () => {
        const key = { userId: "@a:x", roomId: null, type: "t", unaccounted: 2, latest: "recovered" as const };
        const gap: AuditGap = {
            id: "g",
            seq: 2,
            ts: 3,
            lost: 2,
            keys: Array.from({ length: 101 }, (_, i) => ({ ...key, type: `t${i}` })),
            streamPositions: { after: 10, through: 20 },
            ...trail,
        };
        const record = gapRecord(gap);
        expect(record).toMatchObject({
            version: 1,
            kind: "gap",
            seq: 2,
            change_id: "g",
            ts: 3,
            lost: 2,
            keys_total: 101,
            stream_positions: { after: 10, through: 20 },
            hash: H,
        });
        const keys = record.keys as unknown[];
        expect(keys).toHaveLength(100);
        expect(keys[99]).toEqual({ user_id: "@a:x", room_id: null, type: "t99", unaccounted: 2, latest: "recovered" });
    });
});
