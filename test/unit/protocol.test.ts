/**
 * The delivery protocol's request (README, "Delivery protocol"): what each kind of record parses to, and the
 * exact field and problem named for each wrong field (the host module logs them; an admin fixes by them).
 */
import { describe, expect, it } from "vitest";
import { BadFieldError, MAX_CHANGES_PER_BATCH, parseChangeBatch, parsePostedRef } from "../../src/ingest/Protocol.js";
import { readContent, UNREAD_CONTENT } from "../../src/ingest/ContentReader.js";
import { pythonDumps } from "../../src/json/PythonJson.js";
import type { AccountDataChange } from "../../src/modules/ModuleHost.js";

const H = "a".repeat(64);
const H2 = "b".repeat(64);
const CHANGE = {
    id: "c1",
    seq: 5,
    ts: 1000,
    user_id: "@a:x",
    room_id: null,
    type: "m.t",
    content: '{"v": 1.0}',
};

/** The error a body with `change` in place of the first record's fields gives. */
function errorFor(body: unknown): string {
    try {
        parseChangeBatch(body);
    } catch (err) {
        expect(err).toBeInstanceOf(BadFieldError);
        expect((err as BadFieldError).name).toBe("BadFieldError");
        return (err as Error).message;
    }
    return "no error";
}

const withChange = (fields: Record<string, unknown>) => ({ changes: [{ ...CHANGE, ...fields }] });

describe("a batch's records", () => {
    it("parses a change with its defaults", () => {
        const batch = parseChangeBatch({ changes: [CHANGE] });
        expect(batch).toMatchObject({
            follows: null,
            postedHead: null,
            ackedHead: null,
            checkpointIntervalSeconds: null,
            sinksOnly: null,
            again: false,
        });
        expect(parseChangeBatch({ changes: [], again: true }).again).toBe(true);
        expect(() => parseChangeBatch({ changes: [], again: "yes" })).toThrow(/again: must be a boolean/);
        const [change] = batch.changes;
        expect(change).toMatchObject({
            id: "c1",
            seq: 5,
            ts: 1000,
            userId: "@a:x",
            roomId: null,
            type: "m.t",
            contentJson: '{"v": 1.0}',
            recovered: false,
            digestGroup: null,
            committed: null,
            keyedDigest: null,
            chain: null,
        });
        expect(change).not.toHaveProperty("source");
        expect(change).not.toHaveProperty("contentError");
    });

    it("parses a v2 change's chain, commitment, source and digest group", () => {
        const salt = "c".repeat(32);
        const [change] = parseChangeBatch(
            withChange({
                room_id: "!r:x",
                recovered: true,
                source: "tags",
                digest_group: 5,
                keyed_digest: H,
                chain: { prev: H, hash: H2, version: 2 },
                content_size: 10,
                commitment: `sha256:${H2}`,
                salt,
            }),
        ).changes;
        expect(change).toMatchObject({
            roomId: "!r:x",
            recovered: true,
            source: "tags",
            digestGroup: 5,
            keyedDigest: H,
            chain: { prevHash: H, hash: H2, version: 2 },
            committed: { size: 10, commitment: `sha256:${H2}`, salt },
        });
    });

    it("takes chain version 1 when the chain says none, null or 1, and leaves the callback source out", () => {
        for (const version of [undefined, null, 1]) {
            const [change] = parseChangeBatch(withChange({ chain: { prev: H, hash: H2, version } })).changes;
            expect(change?.chain?.version).toBe(1);
        }
        expect(parseChangeBatch(withChange({ source: "callback" })).changes[0]).not.toHaveProperty("source");
    });

    it("parses a gap notice, a deactivation and a checkpoint", () => {
        const gap = {
            id: "g",
            seq: 1,
            ts: 2,
            kind: "gap",
            gap: {
                lost: 3,
                keys: [{ user_id: "@a:x", room_id: "!r:x", type: "t", unaccounted: 3, latest: "recovered" }],
                stream_positions: { after: 10, through: 20 },
            },
        };
        const deactivation = {
            id: "d",
            seq: 2,
            ts: 3,
            kind: "deactivation",
            user_id: "@a:x",
            deactivated: true,
            by_admin: false,
        };
        const checkpoint = { id: "k", seq: 3, ts: 4, kind: "checkpoint" };
        const { changes } = parseChangeBatch({ changes: [gap, deactivation, checkpoint] });
        expect(changes).toEqual([
            {
                kind: "gap",
                id: "g",
                seq: 1,
                ts: 2,
                keyedDigest: null,
                chain: null,
                lost: 3,
                keys: [{ userId: "@a:x", roomId: "!r:x", type: "t", unaccounted: 3, latest: "recovered" }],
                streamPositions: { after: 10, through: 20 },
            },
            {
                kind: "deactivation",
                id: "d",
                seq: 2,
                ts: 3,
                keyedDigest: null,
                chain: null,
                userId: "@a:x",
                deactivated: true,
                byAdmin: false,
            },
            { kind: "checkpoint", id: "k", seq: 3, ts: 4, keyedDigest: null, chain: null },
        ]);
    });

    it("keeps a content as text until the change is recorded (reading it costs far more memory)", () => {
        const [change] = parseChangeBatch(withChange({ content: '{"a": [1, 2.0]}' })).changes;
        expect((change as AccountDataChange).content).toBe(UNREAD_CONTENT);
        const read = readContent(change as AccountDataChange);
        expect(pythonDumps(read.content)).toBe('{"a": [1, 2.0]}');
        expect(readContent(read)).toBe(read); // read once
    });

    it("quarantines a content it cannot read, or one sent without its content, instead of refusing the batch", () => {
        const parse = (fields: Record<string, unknown>) =>
            readContent(parseChangeBatch(withChange(fields)).changes[0] as AccountDataChange);
        expect(parseChangeBatch(withChange({ content: "{" })).changes[0]).not.toHaveProperty("contentError");
        expect(parse({ content: "[1]" })).toMatchObject({
            contentError: "the content is not the JSON text of an object",
        });
        expect(parse({ content: "{" })).toMatchObject({
            contentError: expect.stringMatching(/^the content is not valid JSON: /),
        });
        expect(parse({ content: null, content_omitted: { size: 99 } })).toMatchObject({
            contentJson: "",
            contentSize: 99,
            contentError: "the change is too large to deliver (99 bytes of content; see ingest.max_body_bytes)",
        });
        expect(parse({ content: null, content_omitted: { size: 99, reason: "over_cap" } })).toMatchObject({
            contentError: "the content is larger than the host module delivers (99 bytes; see max_content_bytes)",
        });
    });

    it("reads the batch's own fields", () => {
        const batch = parseChangeBatch({
            changes: [CHANGE],
            follows: 4,
            posted_head: { seq: 3, hash: H },
            acked_head: { seq: 2, hash: H2 },
            checkpoint_interval_seconds: 0.5,
            sinks_only: ["jsonl"],
        });
        expect(batch).toMatchObject({
            follows: 4,
            postedHead: { seq: 3, hash: H },
            ackedHead: { seq: 2, hash: H2 },
            checkpointIntervalSeconds: 0.5,
            sinksOnly: ["jsonl"],
        });
        expect(parseChangeBatch({ changes: [], follows: 0 }).follows).toBe(0);
    });
});

describe("a wrong field is named with its problem", () => {
    const cases: [string, unknown, string][] = [
        ["a body that is not an object", [], "body: must be a JSON object"],
        ["no changes", {}, "changes: must be a list"],
        [
            "too many changes",
            { changes: new Array(MAX_CHANGES_PER_BATCH + 1).fill(CHANGE) },
            "changes: must hold at most 10000 changes",
        ],
        ["a record that is not an object", { changes: [5] }, "changes[0]: must be an object"],
        ["an empty id", withChange({ id: "" }), "changes[0].id: must be 1-128 characters of A-Z a-z 0-9 . _ ~ -"],
        [
            "a long id",
            withChange({ id: "x".repeat(129) }),
            "changes[0].id: must be 1-128 characters of A-Z a-z 0-9 . _ ~ -",
        ],
        [
            "an id with a space",
            withChange({ id: "a b" }),
            "changes[0].id: must be 1-128 characters of A-Z a-z 0-9 . _ ~ -",
        ],
        ["a negative seq", withChange({ seq: -1 }), "changes[0].seq: must be a non-negative integer"],
        ["a fractional seq", withChange({ seq: 1.5 }), "changes[0].seq: must be a non-negative integer"],
        ["a ts as text", withChange({ ts: "1" }), "changes[0].ts: must be a timestamp in milliseconds"],
        [
            "a short keyed digest",
            withChange({ keyed_digest: "ab" }),
            "changes[0].keyed_digest: must be 64 lower-case hex digits (SHA-256)",
        ],
        [
            "an upper-case hash",
            withChange({ chain: { prev: H.toUpperCase(), hash: H } }),
            "changes[0].chain.prev: must be 64 lower-case hex digits (SHA-256)",
        ],
        ["a chain that is a list", withChange({ chain: [] }), "changes[0].chain: must be {prev, hash}"],
        [
            "a chain without a hash",
            withChange({ chain: { prev: H } }),
            "changes[0].chain.hash: must be 64 lower-case hex digits (SHA-256)",
        ],
        [
            "chain version 3",
            withChange({ chain: { prev: H, hash: H, version: 3 } }),
            "changes[0].chain.version: must be 1 or 2 (absent: 1)",
        ],
        ["a user without a sigil", withChange({ user_id: "a:x" }), "changes[0].user_id: must be a user ID (@…)"],
        [
            "a room without a sigil",
            withChange({ room_id: "#r:x" }),
            "changes[0].room_id: must be a room ID (!…) or null",
        ],
        ["no type", withChange({ type: undefined }), "changes[0].type: must be a string"],
        ["recovered as text", withChange({ recovered: "yes" }), "changes[0].recovered: must be a boolean"],
        ["a source that is not text", withChange({ source: 1 }), "changes[0].source: must be a string"],
        [
            "a digest group after the seq",
            withChange({ digest_group: 6 }),
            "changes[0].digest_group: must be null or the seq of the digest's first change",
        ],
        [
            "a negative digest group",
            withChange({ digest_group: -1 }),
            "changes[0].digest_group: must be null or the seq of the digest's first change",
        ],
        [
            "a commitment without a size",
            withChange({ commitment: `sha256:${H}` }),
            "changes[0].content_size: must be a non-negative integer",
        ],
        [
            "a bad commitment",
            withChange({ content_size: 1, commitment: H, salt: "c".repeat(32) }),
            'changes[0].commitment: must be "sha256:" and 64 lower-case hex digits',
        ],
        [
            "a bad salt",
            withChange({ content_size: 1, commitment: `sha256:${H}`, salt: "c".repeat(31) }),
            "changes[0].salt: must be 32 lower-case hex digits",
        ],
        [
            "a content that is not text",
            withChange({ content: {} }),
            "changes[0].content: must be a string holding the content's JSON text (an object)",
        ],
        [
            "an omitted content without a size",
            withChange({ content: null, content_omitted: {} }),
            "changes[0].content: must be a string holding the content's JSON text (an object)",
        ],
        [
            "an unknown kind",
            withChange({ kind: "other" }),
            'changes[0].kind: must be "change" (the default), "gap", "deactivation" or "checkpoint"',
        ],
        [
            "seqs out of order",
            { changes: [CHANGE, { ...CHANGE, id: "c2" }] },
            "changes[1].seq: must be greater than the previous change's seq",
        ],
        [
            "follows at the first seq",
            { changes: [CHANGE], follows: 5 },
            "follows: must be null or a seq lower than the first change's",
        ],
        [
            "follows negative",
            { changes: [], follows: -1 },
            "follows: must be null or a seq lower than the first change's",
        ],
        [
            "follows fractional",
            { changes: [CHANGE], follows: 1.5 },
            "follows: must be null or a seq lower than the first change's",
        ],
        [
            "an interval of zero",
            { changes: [], checkpoint_interval_seconds: 0 },
            "checkpoint_interval_seconds: must be null or a positive number of seconds",
        ],
        [
            "an infinite interval",
            { changes: [], checkpoint_interval_seconds: Infinity },
            "checkpoint_interval_seconds: must be null or a positive number of seconds",
        ],
        [
            "sinks that are not names",
            { changes: [], sinks_only: [1] },
            "sinks_only: must be null or a list of sink names",
        ],
        [
            "sinks that are not a list",
            { changes: [], sinks_only: "jsonl" },
            "sinks_only: must be null or a list of sink names",
        ],
        [
            "a posted head without a seq",
            { changes: [], posted_head: { hash: H } },
            "posted_head: must be null or {seq, hash}",
        ],
        [
            "an acked head with a bad hash",
            { changes: [], acked_head: { seq: 1, hash: "x" } },
            "acked_head.hash: must be 64 lower-case hex digits (SHA-256)",
        ],
    ];
    it.each(cases)("%s", (_what, body, message) => {
        expect(errorFor(body)).toBe(message);
    });

    const gap = (fields: Record<string, unknown>, key: Record<string, unknown> = {}) => ({
        changes: [
            {
                id: "g",
                seq: 1,
                ts: 2,
                kind: "gap",
                gap: {
                    lost: 0,
                    keys: [
                        {
                            user_id: "@a:x",
                            room_id: null,
                            type: "t",
                            unaccounted: 0,
                            latest: "changed_after_restart",
                            ...key,
                        },
                    ],
                    stream_positions: { after: 1, through: 2 },
                    ...fields,
                },
            },
        ],
    });
    const gapCases: [string, unknown, string][] = [
        [
            "a gap notice without its gap",
            { changes: [{ id: "g", seq: 1, ts: 2, kind: "gap" }] },
            "changes[0].gap: must be an object",
        ],
        ["a lost count as text", gap({ lost: "1" }), "changes[0].gap.lost: must be a non-negative integer"],
        ["keys that are not a list", gap({ keys: {} }), "changes[0].gap.keys: must be a list"],
        [
            "no stream positions",
            gap({ stream_positions: null }),
            "changes[0].gap.stream_positions: must be {after, through} positions",
        ],
        [
            "a negative after",
            gap({ stream_positions: { after: -1, through: 2 } }),
            "changes[0].gap.stream_positions: must be {after, through} positions",
        ],
        [
            "no through",
            gap({ stream_positions: { after: 1 } }),
            "changes[0].gap.stream_positions: must be {after, through} positions",
        ],
        ["a key that is not an object", gap({ keys: [1] }), "changes[0].gap.keys[0]: must be an object"],
        [
            "a key's unaccounted count",
            gap({}, { unaccounted: -1 }),
            "changes[0].gap.keys[0].unaccounted: must be a non-negative integer",
        ],
        [
            "a key's latest",
            gap({}, { latest: "lost" }),
            'changes[0].gap.keys[0].latest: must be "recovered" or "changed_after_restart"',
        ],
        ["a key's user", gap({}, { user_id: "x" }), "changes[0].gap.keys[0].user_id: must be a user ID (@…)"],
        [
            "a deactivation's user",
            { changes: [{ id: "d", seq: 1, ts: 1, kind: "deactivation", user_id: 5 }] },
            "changes[0].user_id: must be a user ID (@…)",
        ],
        [
            "a deactivation's flag",
            { changes: [{ id: "d", seq: 1, ts: 1, kind: "deactivation", user_id: "@a:x", deactivated: 1 }] },
            "changes[0].deactivated: must be a boolean",
        ],
        [
            "a deactivation's admin flag",
            { changes: [{ id: "d", seq: 1, ts: 1, kind: "deactivation", user_id: "@a:x", deactivated: false }] },
            "changes[0].by_admin: must be a boolean",
        ],
        [
            "a checkpoint's header",
            { changes: [{ id: "k", seq: 1, kind: "checkpoint" }] },
            "changes[0].ts: must be a timestamp in milliseconds",
        ],
    ];
    it.each(gapCases)("%s", (_what, body, message) => {
        expect(errorFor(body)).toBe(message);
    });
});

describe("parsePostedRef", () => {
    it("takes null or absent as none, and a {seq, hash} as given", () => {
        expect(parsePostedRef(null, "f")).toBeNull();
        expect(parsePostedRef(undefined, "f")).toBeNull();
        expect(parsePostedRef({ seq: 0, hash: H }, "f")).toEqual({ seq: 0, hash: H });
        expect(() => parsePostedRef([], "f")).toThrow("f: must be null or {seq, hash}");
    });
});
