/**
 * The verifier's walk at its edges: a declared predecessor that matches the room's in seq or in hash only, where
 * a trail counts as anchored (genesis, --from) and what it says when it is not, copies (resends of several
 * seqs, a resend of a seq an earlier run saw, a late copy of the state's own seq), skipped events, the newest
 * record by time, and the stale check's boundary and wording.
 */
import { describe, expect, it } from "vitest";
import { TrailVerifier, verifyEvents } from "../../src/verify/Verifier.js";
import {
    ALICE,
    chainOf,
    changeEvent,
    changeRecord,
    digestEvent,
    type Fields,
    message,
    SENDER,
} from "./trailFixtures.js";

const link = (f: Fields) => ({ seq: f.seq as number, hash: f.hash as string });
const kinds = (report: ReturnType<typeof verifyEvents>) => report.problems.map((p) => [p.kind, p.seq, p.eventId]);

describe("a record's declared predecessor", () => {
    it("is a broken link when it names the seq before it but another hash", () => {
        const [one] = chainOf(1) as [Fields];
        const two = changeRecord(2, link(one), { prev_posted: { seq: 1, hash: "f".repeat(64) } });
        const report = verifyEvents([changeEvent(one), changeEvent(two)], SENDER);
        expect(report.problems).toEqual([
            {
                kind: "broken_link",
                seq: 2,
                eventId: "$s2",
                detail: "says the record before it is seq 1, but the room shows seq 1",
            },
        ]);
        expect(report.omittedByPolicy).toBe(0);
    });

    it("names a later posted record as missing even when its hash is the one before", () => {
        const [one] = chainOf(1) as [Fields];
        const five = changeRecord(5, { seq: 4, hash: "e".repeat(64) }, { prev_posted: { seq: 4, hash: one.hash } });
        const report = verifyEvents([changeEvent(one), changeEvent(five)], SENDER);
        expect(kinds(report)).toEqual([["missing", 4, "$s5"]]);
        expect(report.omittedByPolicy).toBe(0);
    });
});

describe("where the trail starts", () => {
    it("is not the chain's first record when the record before it is seq 0 with another hash", () => {
        const three = changeRecord(
            3,
            { seq: 2, hash: "d".repeat(64) },
            { prev_posted: { seq: 0, hash: "c".repeat(64) } },
        );
        const report = verifyEvents([changeEvent(three)], SENDER);
        expect(report.start).toBe("unanchored");
        expect(report.problems).toEqual([
            {
                kind: "unanchored_start",
                seq: 3,
                eventId: "$s3",
                detail:
                    "the trail starts at seq 3, not at the chain's first record: the records before it are not in " +
                    "the room (purged, or never posted), and nothing accounts for them",
            },
        ]);
    });

    it("counts no seq as left out when the first record links to the genesis hash itself", () => {
        const three = changeRecord(3, null);
        const report = verifyEvents([changeEvent(three)], SENDER);
        expect(report).toMatchObject({ start: "genesis", omittedByPolicy: 0, problems: [] });
    });

    it("is --from's seq itself even when the record declares no predecessor (chain v1)", () => {
        const five = changeRecord(5, { seq: 4, hash: "d".repeat(64) }, { prev_posted: null });
        expect(verifyEvents([changeEvent(five)], SENDER, 5)).toMatchObject({ start: "from", problems: [] });
        expect(verifyEvents([changeEvent(five)], SENDER, 4)).toMatchObject({ start: "unanchored" });
    });

    it("is at --from when the first record declares a predecessor before it, and not when it declares --from's seq", () => {
        const before = (declared: number) =>
            changeRecord(5, { seq: 4, hash: "d".repeat(64) }, { prev_posted: { seq: declared, hash: "d".repeat(64) } });
        expect(verifyEvents([changeEvent(before(2))], SENDER, 3)).toMatchObject({ start: "from", problems: [] });
        const report = verifyEvents([changeEvent(before(3))], SENDER, 3);
        expect(report.start).toBe("unanchored");
        expect(kinds(report)).toEqual([["unanchored_start", 5, "$s5"]]);
    });
});

describe("copies", () => {
    it("lists the resends of each seq under that seq", () => {
        const [one, two] = chainOf(2) as [Fields, Fields];
        const events = [changeEvent(one), changeEvent(two), changeEvent(one, "$r1"), changeEvent(two, "$r2")];
        expect(verifyEvents(events, SENDER).duplicates).toEqual([
            { seq: 1, eventIds: ["$s1", "$r1"] },
            { seq: 2, eventIds: ["$s2", "$r2"] },
        ]);
    });

    it("names an earlier run's copy it never read as such", () => {
        const [one, two] = chainOf(2) as [Fields, Fields];
        const verifier = new TrailVerifier(SENDER, {
            after: { seq: 1, hash: one.hash as string, recent: { 1: one.hash as string } },
        });
        verifier.add(changeEvent(one, "$again"));
        verifier.add(changeEvent(two));
        const report = verifier.finish();
        expect(report.duplicates).toEqual([{ seq: 1, eventIds: ["(an earlier copy)", "$again"] }]);
        expect(report.problems).toEqual([]);
    });

    it("reports a record of the state's own seq that it has no hash of as a late copy", () => {
        const [, two] = chainOf(2) as [Fields, Fields];
        const verifier = new TrailVerifier(SENDER, { after: { seq: 2, hash: two.hash as string, recent: {} } });
        verifier.add(changeEvent(two, "$late"));
        expect(verifier.finish().problems).toEqual([
            {
                kind: "late_copy",
                seq: 2,
                eventId: "$late",
                detail: "a record of seq 2 appeared after the trail had passed it",
            },
        ]);
    });

    it("does not list a sound record of a digest as a resend when the copy fails only for another record", () => {
        const [one, two] = chainOf(2) as [Fields, Fields];
        const badTwo = { ...two, type: "m.other" };
        const digest = (id: string) => digestEvent(id, [one, badTwo]);
        const report = verifyEvents([digest("$d1"), digest("$d2")], SENDER);
        expect(report.duplicates).toEqual([{ seq: 1, eventIds: ["$d1", "$d2"] }]);
    });
});

describe("the events it reads", () => {
    it("skips the events an earlier run checked", () => {
        const events = chainOf(3).map((f) => changeEvent(f));
        const verifier = new TrailVerifier(SENDER, { skipEventIds: ["$s2"] });
        for (const event of events) verifier.add(event);
        expect(verifier.finish().problems.map((p) => [p.kind, p.seq])).toEqual([["missing", 2]]);
    });

    it("reports a message without a chain after an earlier run's point, which counts as the chain begun", () => {
        const [one] = chainOf(1) as [Fields];
        const verifier = new TrailVerifier(SENDER, { after: { seq: 1, hash: one.hash as string, recent: {} } });
        verifier.add(message("$plain", SENDER, "hello"));
        expect(verifier.finish().problems).toEqual([
            {
                kind: "unchained",
                seq: null,
                eventId: "$plain",
                detail: "a message from the sender without a hash chain",
            },
        ]);
        const fresh = verifyEvents([message("$plain", SENDER, "hello"), message("$x", ALICE, "hi")], SENDER);
        expect(fresh).toMatchObject({ unchained: 1, problems: [] });
    });
});

describe("liveness", () => {
    it("takes the newest record by time, not by seq", () => {
        const one = changeRecord(1, null, { ts: 5_000 });
        const two = changeRecord(2, link(one), { ts: 3_000 });
        expect(verifyEvents([changeEvent(one), changeEvent(two)], SENDER).newest).toEqual({ seq: 1, ts: 5_000 });
    });

    it("is stale only once older than the maximum age, and says by how much in seconds", () => {
        const one = changeRecord(1, null, { ts: 10_000 });
        const at = (now: number) => verifyEvents([changeEvent(one)], SENDER, 0, { maxAgeMs: 60_000, now });
        expect(at(70_000).problems).toEqual([]);
        expect(at(70_001).problems).toEqual([
            {
                kind: "stale",
                seq: 1,
                eventId: "",
                detail: "the newest record, seq 1 at 1970-01-01T00:00:10.000Z, is older than 60 s: the trail is not being written",
            },
        ]);
    });
});
