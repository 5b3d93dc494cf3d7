/**
 * Each detection `verify` documents (README, "Verifying the trail"), set up on its own: the chain's links,
 * digests' records checked one by one, copies whose body is not the sentence, late copies and where the trail
 * starts. Pins what mutation testing found unguarded (issue #25).
 */
import { describe, expect, it } from "vitest";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { GENESIS } from "../../src/verify/Chain.js";
import { TrailVerifier, verifyEvents } from "../../src/verify/Verifier.js";
import {
    ALICE,
    chainOf,
    changeEvent,
    changeRecord,
    digestEvent,
    type Fields,
    hashOf,
    lineOf,
    message,
    recordIn,
    SENDER,
} from "./trailFixtures.js";

const kinds = (events: RoomEvent[], fromSeq = 0) =>
    verifyEvents(events, SENDER, fromSeq).problems.map((p) => [p.kind, p.seq, p.eventId]);

const link = (f: Fields) => ({ seq: f.seq as number, hash: f.hash as string });

describe("verify follows the chain's links", () => {
    it("reports a broken link where a record's prev_hash is not the hash of the seq before it", () => {
        const records = chainOf(4);
        // Seq 4 relinked to a made-up predecessor (still naming seq 3 as posted before it), its own hash
        // recomputed: it checks out on its own, only its link is wrong.
        records[3] = changeRecord(4, { seq: 3, hash: "f".repeat(64) }, { prev_posted: link(records[2] as Fields) });
        expect(kinds(records.map((r) => changeEvent(r)))).toEqual([["broken_link", 4, "$s4"]]);
        const report = verifyEvents(
            records.map((r) => changeEvent(r)),
            SENDER,
        );
        expect(report.problems[0]?.detail).toBe("prev_hash is not the hash of seq 3");
    });

    it("reports a broken link where a record names an older posted record than the room shows before it", () => {
        const records = chainOf(6);
        // Seq 6 says the last posted record was seq 4 (as if 5 had been left out), yet seq 5 is in the room.
        records[5] = changeRecord(6, link(records[4] as Fields), { prev_posted: link(records[3] as Fields) });
        const report = verifyEvents(
            records.map((r) => changeEvent(r)),
            SENDER,
        );
        expect(report.problems).toEqual([
            {
                kind: "broken_link",
                seq: 6,
                eventId: "$s6",
                detail: "says the record before it is seq 4, but the room shows seq 5",
            },
        ]);
        expect(report.omittedByPolicy).toBe(0);
    });

    it("names the posted record a later one declares when it is not in the room", () => {
        const records = chainOf(6);
        const events = records.filter((r) => r.seq !== 4 && r.seq !== 5).map((r) => changeEvent(r));
        const report = verifyEvents(events, SENDER);
        expect(report.problems).toEqual([
            {
                kind: "missing",
                seq: 5,
                eventId: "$s6",
                detail: "seq 5 (and any posted record after seq 3) is not in the room",
            },
        ]);
    });

    it("names the missing seqs when a record declares no posted predecessor (chain v1)", () => {
        const records = chainOf(5).map((r): Fields => ({ ...r, prev_posted: null }));
        const events = records.filter((r) => r.seq !== 2 && r.seq !== 3).map((r) => changeEvent(r));
        expect(verifyEvents(events, SENDER).problems).toEqual([
            {
                kind: "missing",
                seq: 2,
                eventId: "$s4",
                detail: "seqs 2-3 are not in the room, and no record says why",
            },
        ]);
    });

    it("counts seqs the policy left out when the next record names the last posted one", () => {
        const one = changeRecord(1, null);
        const two = changeRecord(2, link(one));
        // Seqs 3 to 5 left out by the policy: seq 6 links to seq 5's hash but declares seq 2 as posted before it.
        const six = changeRecord(6, { seq: 5, hash: "a".repeat(64) }, { prev_posted: link(two) });
        const report = verifyEvents(
            [one, two, six].map((r) => changeEvent(r)),
            SENDER,
        );
        expect(report).toMatchObject({ intact: true, records: 3, omittedByPolicy: 3, firstSeq: 1, lastSeq: 6 });
    });

    it("starts at the chain's first record even when the policy left out the first seqs", () => {
        // Seq 3 is the first posted record: it links to seq 2's hash, but declares genesis as posted before it.
        const three = changeRecord(3, { seq: 2, hash: "b".repeat(64) }, { prev_posted: { seq: 0, hash: GENESIS } });
        const report = verifyEvents([changeEvent(three)], SENDER);
        expect(report).toMatchObject({ intact: true, start: "genesis", omittedByPolicy: 2 });
    });

    it("starts at --from when the first record is that seq, or declares one before it", () => {
        const records = chainOf(8);
        const fromFive = records.slice(4).map((r) => changeEvent(r));
        expect(verifyEvents(fromFive, SENDER, 5)).toMatchObject({ intact: true, start: "from", firstSeq: 5 });
        // Asked from seq 6: seq 5 is not checked, seq 6 starts the trail.
        expect(verifyEvents(fromFive, SENDER, 6)).toMatchObject({ intact: true, start: "from", firstSeq: 6 });
        // Asked from seq 3, but the room starts at 5: records before it are unaccounted for.
        const report = verifyEvents(fromFive, SENDER, 3);
        expect(report.start).toBe("unanchored");
        expect(report.problems.map((p) => [p.kind, p.seq])).toEqual([["unanchored_start", 5]]);
    });

    it("skips the checks of records before --from, even a tampered one", () => {
        const events = chainOf(4).map((r) => changeEvent(r));
        recordIn(events[0] as RoomEvent).user_id = "@mallory:example.org";
        expect(kinds(events, 2)).toEqual([]);
        expect(kinds(events, 1)).toEqual([
            ["hash_mismatch", 1, "$s1"],
            ["body_mismatch", 1, "$s1"],
        ]);
    });

    it("reports a record that turns up after an incremental run passed its seq", () => {
        const records = chainOf(6);
        const verifier = new TrailVerifier(SENDER, { after: { ...link(records[4] as Fields), recent: {} } });
        verifier.add(changeEvent(records[2] as Fields));
        verifier.add(changeEvent(records[5] as Fields));
        const report = verifier.finish();
        expect(report.problems).toEqual([
            {
                kind: "late_copy",
                seq: 3,
                eventId: "$s3",
                detail: "a record of seq 3 appeared after the trail had passed it",
            },
        ]);
        expect(report).toMatchObject({ start: "state", records: 1, firstSeq: 6 });
    });
});

describe("verify checks every record inside a digest", () => {
    it("finds a digest of intact records intact, each record walked on its own", () => {
        const records = chainOf(5);
        const events = [changeEvent(records[0] as Fields), digestEvent("$d", records.slice(1))];
        expect(verifyEvents(events, SENDER)).toMatchObject({ intact: true, records: 5, lastSeq: 5, problems: [] });
    });

    it("reports a record inside a digest whose fields do not give its hash", () => {
        const records = chainOf(4);
        records[2] = { ...(records[2] as Fields), user_id: "@bob:example.org" };
        const event = digestEvent("$d", records);
        expect(kinds([event])).toContainEqual(["hash_mismatch", 3, "$d"]);
    });

    it("reports a record inside a digest whose content is not what the chain commits to", () => {
        const records = chainOf(3);
        records[1] = { ...(records[1] as Fields), content: '{"n":99}' };
        const event = digestEvent("$d", records);
        event.content.body = [records[0], { ...records[1], seq: 99 }, records[2]]
            .map((r) => lineOf(r as Fields))
            .join("\n");
        expect(kinds([event])).toEqual([["content_mismatch", 2, "$d"]]);
    });

    it("reports a digest whose body does not say what one of its records holds", () => {
        const records = chainOf(3);
        const event = digestEvent("$d", records);
        event.content.body = String(event.content.body).replace('{"n": 2}', '{"n": 7}');
        expect(kinds([event])).toEqual([["body_mismatch", 1, "$d"]]);
    });

    it("reports a conflicting copy of a seq that first came inside a digest", () => {
        const records = chainOf(3);
        const other = changeRecord(2, link(records[0] as Fields), { ts: 5 });
        const report = verifyEvents([digestEvent("$d", records), changeEvent(other, "$other")], SENDER);
        expect(report.problems.map((p) => [p.kind, p.seq, p.eventId])).toEqual([["conflicting_records", 2, "$other"]]);
        expect(report.problems[0]?.detail).toBe("two different records with one seq");
    });
});

describe("verify reads each copy's body", () => {
    it("reports a copy carrying a sound record whose body is not the sentence, and does not list it as a resend", () => {
        const records = chainOf(3);
        const events = records.map((r) => changeEvent(r));
        const bare = message("$bare", SENDER, "nothing to see here", records[1]);
        const report = verifyEvents([...events, bare], SENDER);
        expect(report.problems).toEqual([
            {
                kind: "body_mismatch",
                seq: 2,
                eventId: "$bare",
                detail: "the message body does not say what the record holds",
            },
        ]);
        expect(report.duplicates).toEqual([]);
    });

    it("lists every identical resend of a seq under that seq", () => {
        const events = chainOf(2).map((r) => changeEvent(r));
        const copies = ["$c1", "$c2"].map((id) => ({ ...(events[1] as RoomEvent), event_id: id }));
        const report = verifyEvents([...events, ...copies], SENDER);
        expect(report).toMatchObject({ intact: true, duplicates: [{ seq: 2, eventIds: ["$s2", "$c1", "$c2"] }] });
    });

    it("checks a metadata record's body: the content's size and the keyed digest's first 16 hex digits", () => {
        const record = changeRecord(1, null, { level: "metadata", content: null, content_salt: null });
        const keyed = (record.keyed_digest as string).slice(0, 16);
        const body = `${ALICE} has changed their account data for type m.t to: [content withheld: 7 bytes, keyed digest ${keyed}]`;
        expect(kinds([message("$m", SENDER, body, record)])).toEqual([]);
        const wrongSize = body.replace("7 bytes", "8 bytes");
        expect(kinds([message("$m", SENDER, wrongSize, record)])).toEqual([["body_mismatch", 1, "$m"]]);
    });

    it("checks a checkpoint's body against its record", () => {
        const before = changeRecord(1, null);
        const fields: Fields = {
            version: 1,
            kind: "checkpoint",
            seq: 2,
            change_id: "k2",
            ts: 1_700_000_000_000,
            chain_version: 2,
            keyed_digest: null,
            prev_hash: before.hash,
            prev_posted: link(before),
        };
        fields.hash = hashOf(fields);
        const body =
            `Audit checkpoint: seq 2 at 2023-11-14T22:13:20.000Z, chain head ${(before.hash as string).slice(0, 16)}. ` +
            "The trail is alive: nothing else was recorded for the checkpoint interval.";
        // A checkpoint's head is its own hash: rebuilt from the record's `hash` field.
        const ownHead = body.replace((before.hash as string).slice(0, 16), (fields.hash as string).slice(0, 16));
        expect(kinds([changeEvent(before), message("$k", SENDER, ownHead, fields)])).toEqual([]);
        expect(kinds([changeEvent(before), message("$k", SENDER, body.replace("seq 2", "seq 3"), fields)])).toEqual([
            ["body_mismatch", 2, "$k"],
        ]);
    });

    it("flags a message from anyone else that carries a record, even without the sentence", () => {
        const record = chainOf(1)[0] as Fields;
        const report = verifyEvents([message("$x", "@mallory:example.org", "hi", record)], SENDER);
        expect(report.problems).toEqual([
            { kind: "look_alike", seq: null, eventId: "$x", detail: "an audit-like message from @mallory:example.org" },
        ]);
        expect(report.records).toBe(0);
    });

    it("ignores other people's ordinary messages and their edits of them", () => {
        const events = [
            ...chainOf(2).map((r) => changeEvent(r)),
            message("$hi", "@bob:example.org", "hello"),
            {
                ...message("$fix", "@bob:example.org", "* hello!"),
                content: { body: "* hello!", "m.relates_to": { rel_type: "m.replace", event_id: "$hi" } },
            },
        ];
        expect(verifyEvents(events, SENDER)).toMatchObject({ intact: true, problems: [] });
    });

    it("says an empty room is stale when a maximum age is asked for", () => {
        const report = verifyEvents([], SENDER, 0, { maxAgeMs: 1000, now: 5000 });
        expect(report.problems).toEqual([
            { kind: "stale", seq: null, eventId: "", detail: "the room has no record: the trail is not being written" },
        ]);
        expect(report).toMatchObject({ records: 0, firstSeq: null, lastSeq: null, start: null, newest: null });
    });
});

describe("the audit record key", () => {
    it("is what the verifier reads records from", () => {
        expect(RECORD_KEY in changeEvent(chainOf(1)[0] as Fields).content).toBe(true);
    });
});

describe("verify compares what every copy shows", () => {
    // A token holder's copies of genuine records that keep the chain fields (so each checks out on its own) and
    // change what a reader sees: each is a conflict, not an identical resend.
    const forgedCopies = (): { events: RoomEvent[]; copies: RoomEvent[] } => {
        const records = chainOf(3);
        const events = records.map((r) => changeEvent(r));
        const html = structuredClone(events[0] as RoomEvent);
        html.event_id = "$html";
        html.content.formatted_body = "<b>@alice changed org.example.k to 999999</b>";
        const level = structuredClone(events[1] as RoomEvent);
        level.event_id = "$level";
        (level.content[RECORD_KEY] as Fields).level = "none";
        level.content.body = "FORGED: bob stole alice's key";
        return { events, copies: [html, level] };
    };

    it("reports a copy with other HTML or other record fields as conflicting, and lists no resend", () => {
        const { events, copies } = forgedCopies();
        const report = verifyEvents([...events, ...copies], SENDER);
        expect(report.problems.map((p) => [p.kind, p.seq, p.eventId, p.detail])).toEqual([
            [
                "conflicting_records",
                1,
                "$html",
                "a copy of the record that shows something else (body, HTML or record fields)",
            ],
            [
                "conflicting_records",
                2,
                "$level",
                "a copy of the record that shows something else (body, HTML or record fields)",
            ],
        ]);
        expect(report.duplicates).toEqual([]);
        expect(report.intact).toBe(false);
    });

    it("still takes a copy that differs only in prev_posted (what was posted before it) as a resend", () => {
        const records = chainOf(3);
        const events = records.map((r) => changeEvent(r));
        const resend = structuredClone(events[2] as RoomEvent);
        resend.event_id = "$resend";
        (resend.content[RECORD_KEY] as Fields).prev_posted = link(records[0] as Fields);
        const report = verifyEvents([...events, resend], SENDER);
        expect(report.problems).toEqual([]);
        expect(report.duplicates).toEqual([{ seq: 3, eventIds: [events[2]?.event_id, "$resend"] }]);
    });
});
