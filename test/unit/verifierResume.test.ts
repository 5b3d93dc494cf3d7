/**
 * Where an incremental run resumes when everything settled (after the last event read) or when a digest holds
 * both a settled and an unsettled record (the digest is read again, never skipped); and the cap on the
 * resends listed.
 */
import { describe, expect, it } from "vitest";
import { TrailVerifier, verifyEvents } from "../../src/verify/Verifier.js";
import { chainOf, changeEvent, changeRecord, digestEvent, type Fields, SENDER } from "./trailFixtures.js";

const link = (f: Fields) => ({ seq: f.seq as number, hash: f.hash as string });

describe("the resume point with a settle time", () => {
    it("is after the last event read when every record has settled", () => {
        const verifier = new TrailVerifier(SENDER, { settleMs: 0 });
        for (const f of chainOf(3)) verifier.add(changeEvent(f));
        expect(verifier.finish().intact).toBe(true);
        const resume = verifier.resumePoint();
        expect(resume?.verified.seq).toBe(3);
        expect(resume?.afterEventId).toBe("$s3");
        expect(resume?.checkedAfter).toEqual([]);
    });

    it("reads a digest again when only some of its records settled, and does not list it as checked", () => {
        const one = changeRecord(1, null);
        const two = changeRecord(2, link(one), { ts: 1_002_000 });
        const three = changeRecord(3, link(two), { ts: 1_012_000 });
        const verifier = new TrailVerifier(SENDER, { settleMs: 5_000 });
        verifier.add(changeEvent(one));
        verifier.add(digestEvent("$d", [two, three]));
        expect(verifier.finish().intact).toBe(true);
        expect(verifier.resumePoint()).toEqual({
            verified: { seq: 2, hash: two.hash, recent: { 1: one.hash, 2: two.hash } },
            afterEventId: "$s1",
            checkedAfter: [],
        });
    });
});

describe("resends", () => {
    it("are listed for the first 1000 seqs only", () => {
        const records = chainOf(1001);
        const events = [
            ...records.map((f) => changeEvent(f)),
            ...records.map((f) => changeEvent(f, `$again${f.seq as number}`)),
        ];
        const report = verifyEvents(events, SENDER);
        expect(report.duplicates).toHaveLength(1000);
        expect(report.duplicates.at(-1)).toEqual({ seq: 1000, eventIds: ["$s1000", "$again1000"] });
        expect(report.problems).toEqual([]);
    });
});
