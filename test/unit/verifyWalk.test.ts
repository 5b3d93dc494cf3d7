/**
 * verify's walk beyond single detections: redactions paired with the seqs they removed, edits, events it does
 * not read, liveness by the newest record, and where an incremental run resumes.
 */
import { describe, expect, it } from "vitest";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { TrailVerifier, verifyEvents } from "../../src/verify/Verifier.js";
import { chainOf, changeEvent, type Fields, message, SENDER } from "./trailFixtures.js";

const redact = (event: RoomEvent): RoomEvent =>
    ({ ...event, content: {}, unsigned: { redacted_because: {} } }) as RoomEvent;

describe("redactions", () => {
    it("name the seqs they removed when they are as many as the seqs missing", () => {
        const events = chainOf(6).map((r) => changeEvent(r));
        const report = verifyEvents(
            events.map((e) => (e.event_id === "$s2" || e.event_id === "$s4" ? redact(e) : e)),
            SENDER,
        );
        expect(report.problems).toEqual([
            { kind: "redacted", seq: 2, eventId: "$s2", detail: "the audit event of seq 2 was redacted" },
            { kind: "redacted", seq: 4, eventId: "$s4", detail: "the audit event of seq 4 was redacted" },
        ]);
    });

    it("are reported on their own, beside the missing seqs, when the counts differ", () => {
        const events = chainOf(6)
            .map((r) => changeEvent(r))
            .filter((e) => e.event_id !== "$s5");
        const report = verifyEvents(
            events.map((e) => (e.event_id === "$s2" ? redact(e) : e)),
            SENDER,
        );
        expect(report.problems.map((p) => [p.kind, p.seq, p.eventId])).toEqual([
            ["missing", 2, "$s3"],
            ["missing", 5, "$s6"],
            ["redacted", null, "$s2"],
        ]);
        expect(report.problems[2]?.detail).toBe("an audit event was redacted");
    });

    it("show also as an event without a body", () => {
        const events = chainOf(2).map((r) => changeEvent(r));
        const bodiless = { ...(events[1] as RoomEvent), content: { msgtype: "m.text" } };
        expect(verifyEvents([events[0] as RoomEvent, bodiless], SENDER).problems.map((p) => p.kind)).toEqual([
            "redacted",
        ]);
    });
});

describe("events verify does not take as records", () => {
    it("skips redaction events and other event types, and counts old messages without a chain", () => {
        const events: RoomEvent[] = [
            { ...message("$old", SENDER, "an old audit message"), origin_server_ts: 1 },
            { event_id: "$red", type: "m.room.redaction", sender: SENDER, origin_server_ts: 0, content: {} },
            { event_id: "$topic", type: "m.room.topic", sender: SENDER, origin_server_ts: 0, content: { topic: "t" } },
            ...chainOf(2).map((r) => changeEvent(r)),
        ];
        expect(verifyEvents(events, SENDER)).toMatchObject({ intact: true, records: 2, unchained: 1, problems: [] });
    });

    it("reports the sender's own edits of its audit events", () => {
        const events = chainOf(2).map((r) => changeEvent(r));
        const edit = {
            ...message("$e", SENDER, "* x"),
            content: { body: "* x", "m.relates_to": { rel_type: "m.replace", event_id: "$s1" } },
        };
        const report = verifyEvents([...events, edit], SENDER);
        expect(report.problems).toEqual([
            { kind: "edited", seq: null, eventId: "$e", detail: `${SENDER} edited audit event $s1` },
        ]);
        expect(report.records).toBe(2);
    });

    it("takes a relation other than a replacement as a message", () => {
        const events = chainOf(1).map((r) => changeEvent(r));
        const thread = {
            ...message("$t", "@bob:x", "hi"),
            content: { body: "hi", "m.relates_to": { rel_type: "m.thread", event_id: "$s1" } },
        };
        expect(verifyEvents([...events, thread], SENDER).problems).toEqual([]);
    });
});

describe("liveness", () => {
    it("judges by the newest record's time: stale only once it is older than the maximum age", () => {
        const events = chainOf(3).map((r) => changeEvent(r));
        const report = verifyEvents(events, SENDER, 0, { maxAgeMs: 1000, now: 1_003_500 });
        expect(report.newest).toEqual({ seq: 3, ts: 1_003_000 });
        expect(report.problems).toEqual([]);
        expect(verifyEvents(events, SENDER, 0, { maxAgeMs: 1000, now: 1_004_001 }).problems.map((p) => p.kind)).toEqual(
            ["stale"],
        );
    });

    it("takes the later of two records with the same time as the newest", () => {
        const records = chainOf(2).map((r) => ({ ...r, ts: 5 }));
        const events = records.map((r) => changeEvent(r));
        // Their hashes no longer fit their times: only newest is looked at here.
        expect(verifyEvents(events, SENDER).newest).toEqual({ seq: 2, ts: 5 });
    });
});

describe("an incremental run's resume point", () => {
    it("is the last record walked, with the hashes of recent seqs, read after the last event", () => {
        const events = chainOf(5).map((r) => changeEvent(r));
        const verifier = new TrailVerifier(SENDER);
        for (const event of events) verifier.add(event);
        verifier.finish();
        const resume = verifier.resumePoint(2);
        expect(resume?.verified.seq).toBe(5);
        expect(Object.keys(resume?.verified.recent ?? {})).toEqual(["4", "5"]);
        expect(resume?.afterEventId).toBe("$s5");
        expect(resume?.checkedAfter).toEqual([]);
        expect(Object.keys(verifier.resumePoint()?.verified.recent ?? {})).toEqual(["1", "2", "3", "4", "5"]);
    });

    it("is none when nothing was walked", () => {
        const verifier = new TrailVerifier(SENDER);
        verifier.finish();
        expect(verifier.resumePoint()).toBeNull();
    });

    it("leaves records too recent to have settled to the next run, naming what it checked after them", () => {
        const records = chainOf(6);
        // Seq 5 arrives before seq 4 (posting is concurrent): both are within the settle time of the newest.
        const order = [1, 2, 3, 5, 4, 6].map((seq) => changeEvent(records[seq - 1] as Fields));
        const verifier = new TrailVerifier(SENDER, { settleMs: 1500 });
        for (const event of order) verifier.add(event);
        expect(verifier.finish().intact).toBe(true);
        const resume = verifier.resumePoint();
        // Seqs 5 and 6 (ts within 1.5 s of seq 6's) wait; seq 4 settled, and was read after seq 5's event.
        expect(resume?.verified.seq).toBe(4);
        expect(resume?.afterEventId).toBe("$s3");
        expect(resume?.checkedAfter).toEqual(["$s4"]);
    });
});
