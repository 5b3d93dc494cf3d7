/**
 * RecordChecks on single records and events: which fields enter a record's hash (a recovered change, a
 * deactivation's user), when a shown content is held against the chain (v2: salt, commitment and size each;
 * v1: the digest), which records' bodies are rebuilt and compared, and which events hold a chained record.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { GENESIS } from "../../src/verify/Chain.js";
import { chainedRecordsOf, checkEvent, contentMatches, isRedacted, linkHash } from "../../src/verify/RecordChecks.js";
import {
    changeEvent,
    changeRecord,
    digestEvent,
    type Fields,
    hashOf,
    lineOf,
    message,
    SENDER,
} from "./trailFixtures.js";

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/** The records of one event, as the verifier hands them to checkEvent. */
const recordsOf = (event: RoomEvent) => chainedRecordsOf(event) ?? [];

describe("a record's hash", () => {
    it("chains a recovered change as kind 'recovered'", () => {
        const recovered = changeRecord(1, null, { recovered: true });
        expect(linkHash(1, recovered, GENESIS)).toBe(recovered.hash);
        expect(linkHash(1, { ...recovered, recovered: false }, GENESIS)).not.toBe(recovered.hash);
    });

    it("chains a deactivation with its user, and keeps its own kind even when marked recovered", () => {
        const deactivation: Fields = {
            version: 1,
            kind: "deactivation",
            seq: 4,
            change_id: "d4",
            ts: 1_004_000,
            user_id: "@gone:example.org",
            keyed_digest: null,
            recovered: true,
            chain_version: 2,
            prev_hash: "a".repeat(64),
        };
        const hash = hashOf(deactivation);
        expect(linkHash(4, deactivation, "a".repeat(64))).toBe(hash);
        expect(linkHash(4, { ...deactivation, user_id: "@other:example.org" }, "a".repeat(64))).not.toBe(hash);
    });
});

describe("a shown content against the chain", () => {
    const full = changeRecord(1, null);
    const content = full.content as string;

    it("holds a v2 full record to its salt, commitment and size, each on its own", () => {
        expect(contentMatches(full)).toBe(true);
        // No salt, even with the commitment the missing salt would give as text.
        expect(
            contentMatches({ ...full, content_salt: undefined, commitment: `sha256:${sha256(`null${content}`)}` }),
        ).toBe(false);
        expect(contentMatches({ ...full, commitment: `sha256:${sha256(content)}` })).toBe(false);
        expect(contentMatches({ ...full, content_size: content.length + 1 })).toBe(false);
    });

    it("holds a v1 record to its content_digest", () => {
        const v1 = { ...full, chain_version: 1, content_digest: `sha256:${sha256(content)}` };
        expect(contentMatches(v1)).toBe(true);
        expect(contentMatches({ ...v1, content_digest: `sha256:${sha256("other")}` })).toBe(false);
    });

    it("does not check a content that is not a full change's, or no content at all", () => {
        expect(contentMatches({ ...full, content_size: 1, level: "metadata" })).toBe(true);
        expect(contentMatches({ ...full, content_size: 1, kind: "checkpoint" })).toBe(true);
        expect(contentMatches({ ...full, content: undefined })).toBe(true);
        expect(contentMatches({ ...full, content: 5 })).toBe(true);
    });
});

describe("checkEvent", () => {
    it("names a record whose fields do not give its hash, and one whose content the chain does not commit to", () => {
        const tampered = { ...changeRecord(1, null), type: "m.other" };
        const changed = message("$t", SENDER, lineOf(tampered), tampered);
        expect(checkEvent(changed, recordsOf(changed), 0)).toEqual([
            { kind: "hash_mismatch", seq: 1, eventId: "$t", detail: "the record's fields do not give its hash" },
        ]);
        const bad = { ...changeRecord(2, null), content: '{"n":3}' };
        const event = message("$b", SENDER, lineOf(bad), bad);
        expect(checkEvent(event, recordsOf(event), 0)).toEqual([
            {
                kind: "content_mismatch",
                seq: 2,
                eventId: "$b",
                detail: "the content does not match what the chain commits to",
            },
        ]);
    });

    it("leaves the body of a digest alone when one of its contents is already reported", () => {
        const [one, two] = [changeRecord(1, null), changeRecord(2, null)];
        const badTwo = { ...two, content: '{"n":9}' };
        const event = digestEvent("$d", [one, badTwo]);
        event.content.body = "something else";
        expect(checkEvent(event, recordsOf(event), 0).map((p) => [p.kind, p.seq])).toEqual([["content_mismatch", 2]]);
    });

    it("does not compare the body when a record's line cannot be rebuilt (content left out)", () => {
        const one = changeRecord(1, null);
        const two = changeRecord(2, null, { content: undefined });
        const event = digestEvent("$d", [one, two]);
        event.content.body = `${lineOf(one)}\nsomething the verifier cannot rebuild`;
        expect(checkEvent(event, recordsOf(event), 0)).toEqual([]);
    });

    it("compares a change's body only at level full or metadata", () => {
        const other = changeRecord(1, null, { level: "none", content: undefined });
        const event = message("$n", SENDER, "whatever the body says", other);
        expect(checkEvent(event, recordsOf(event), 0)).toEqual([]);
        const wrong = message("$w", SENDER, "not the sentence", changeRecord(1, null));
        expect(checkEvent(wrong, recordsOf(wrong), 0)).toEqual([
            {
                kind: "body_mismatch",
                seq: 1,
                eventId: "$w",
                detail: "the message body does not say what the record holds",
            },
        ]);
        expect(checkEvent(wrong, recordsOf(wrong), 2)).toEqual([]);
    });

    it("reads a quarantine notice only where the record gives a reason", () => {
        const noReason = changeRecord(1, null, { quarantine: { reason: 5 } });
        const event = changeEvent(noReason);
        expect(checkEvent(event, recordsOf(event), 0)).toEqual([]);
    });
});

describe("the records an event holds", () => {
    it("holds none when a digest's record is not an object, or one of them lacks a chain", () => {
        const digestOf = (records: unknown[]) => message("$d", SENDER, "body", { version: 1, kind: "digest", records });
        expect(chainedRecordsOf(digestOf([null]))).toBeNull();
        const one = changeRecord(1, null);
        expect(chainedRecordsOf(digestOf([one, { seq: 2 }]))).toBeNull();
        expect(chainedRecordsOf(message("$p", SENDER, "plain"))).toBeNull();
    });

    it("takes prev_posted only as an object", () => {
        const one = changeRecord(1, null, { prev_posted: "seq 0" });
        expect(chainedRecordsOf(changeEvent(one))).toEqual([
            {
                eventId: "$s1",
                seq: 1,
                ts: 1_001_000,
                hash: one.hash,
                prevHash: GENESIS,
                prevPosted: null,
                fields: one,
            },
        ]);
    });
});

describe("isRedacted", () => {
    it("is true for an event redacted with its body kept, or with no body", () => {
        const kept = { ...message("$r", SENDER, "body"), unsigned: { redacted_because: { event_id: "$x" } } };
        expect(isRedacted(kept)).toBe(true);
        expect(isRedacted({ ...message("$r", SENDER, "body"), content: {} })).toBe(true);
        expect(isRedacted(message("$r", SENDER, "body"))).toBe(false);
    });
});
