import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { auditMessageBody } from "../../src/modules/audit/Messages.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { canonical, GENESIS, recordHash, recordHashV2 } from "../../src/verify/Chain.js";
import { TrailVerifier, verifyEvents } from "../../src/verify/Verifier.js";

const SENDER = "@audit:example.org";
const ALICE = "@alice:example.org";

describe("the chain's canonical encoding", () => {
    it("matches README's worked example (and the host module's, tested against the same vector)", () => {
        const link = {
            seq: 1,
            changeId: "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5",
            ts: 1700000000000,
            kind: "change",
            userId: ALICE,
            roomId: null,
            type: "im.vector.setting.theme",
            keyedDigest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            prevHash: GENESIS,
        };
        expect(canonical(link)).toBe(
            '["v1",1,"5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5",1700000000000,"change","@alice:example.org",null,' +
                '"im.vector.setting.theme","hmac-sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",' +
                '"0000000000000000000000000000000000000000000000000000000000000000"]',
        );
        expect(recordHash(link)).toBe("8f8d88c2457b4f091a37e740727f94cbc5d95858401e07cf39a7149325454056");
        expect(canonical({ ...link, type: "é☃<x>", roomId: "!r:x" })).toContain('"!r:x","\\u00e9\\u2603<x>"');
    });
});

/** Builds the audit events of a trail of `count` changes, as the appservice would post them. */
function trail(count: number, hidden: number[] = []): RoomEvent[] {
    const events: RoomEvent[] = [];
    let prev = GENESIS;
    let prevPosted: { seq: number; hash: string } | null = null;
    for (let seq = 1; seq <= count; seq++) {
        const content = `{"n":${seq}}`;
        const keyed = createHash("sha256").update(`key:${content}`).digest("hex");
        const fields = { seq, changeId: `c${seq}`, ts: 1000 + seq, kind: "change", userId: ALICE, roomId: null };
        const hash = recordHash({ ...fields, type: "m.t", keyedDigest: keyed, prevHash: prev });
        if (!hidden.includes(seq)) {
            const record = {
                version: 1,
                kind: "change",
                seq,
                change_id: `c${seq}`,
                ts: 1000 + seq,
                user_id: ALICE,
                room_id: null,
                type: "m.t",
                level: "full",
                recovered: false,
                content_size: content.length,
                content_digest: `sha256:${createHash("sha256").update(content).digest("hex")}`,
                content,
                keyed_digest: keyed,
                prev_hash: prev,
                hash,
                prev_posted: prevPosted,
            };
            events.push(message(`$e${seq}`, SENDER, auditMessageBody(ALICE, null, "m.t", `{"n": ${seq}}`), record));
            prevPosted = { seq, hash };
        }
        prev = hash;
    }
    return events;
}

function message(id: string, sender: string, body: string, record?: object): RoomEvent {
    return {
        event_id: id,
        type: "m.room.message",
        sender,
        origin_server_ts: 0,
        content: { msgtype: "m.text", body, ...(record ? { [RECORD_KEY]: record } : {}) },
    };
}

describe("verifyEvents", () => {
    it("finds an intact trail intact, and counts what the policy left out", () => {
        const report = verifyEvents(trail(20, [5, 6, 12]), SENDER);
        expect(report).toMatchObject({ intact: true, records: 17, firstSeq: 1, lastSeq: 20, omittedByPolicy: 3 });
        expect(report.problems).toEqual([]);
    });

    it("names a record missing from the room", () => {
        const events = trail(10).filter((e) => e.event_id !== "$e4");
        const report = verifyEvents(events, SENDER);
        expect(report.intact).toBe(false);
        expect(report.problems[0]).toMatchObject({ kind: "missing", seq: 4, eventId: "$e5" });
    });

    it("names a redacted audit event with its seq", () => {
        const events = trail(10).map((e) =>
            e.event_id === "$e7" ? { ...e, content: {}, unsigned: { redacted_because: { sender: "@admin:x" } } } : e,
        );
        expect(verifyEvents(events, SENDER).problems).toEqual([
            { kind: "redacted", seq: 7, eventId: "$e7", detail: "the audit event of seq 7 was redacted" },
        ]);
    });

    it("names look-alikes, edits, tampered records and conflicting copies; duplicates are only information", () => {
        const events = trail(6);
        const copy = { ...(events[1] as RoomEvent), event_id: "$copy" };
        events.push(message("$fake", "@mallory:example.org", String(events[2]?.content.body)));
        events.push(copy);
        events.push({
            ...message("$edit", "@mallory:example.org", "* edited"),
            content: { body: "* x", "m.relates_to": { rel_type: "m.replace", event_id: "$e3" } },
        });
        const tampered = events[4] as RoomEvent;
        (tampered.content[RECORD_KEY] as Record<string, unknown>).content = '{"n":999}';
        const report = verifyEvents(events, SENDER);
        expect(report.problems.map((p) => [p.kind, p.seq, p.eventId])).toEqual([
            ["content_mismatch", 5, "$e5"],
            ["look_alike", null, "$fake"],
            ["edited", null, "$edit"],
        ]);
        expect(report.duplicates).toEqual([{ seq: 2, eventIds: ["$e2", "$copy"] }]);
    });

    it("notices a record whose fields were changed (its hash no longer fits)", () => {
        const events = trail(3);
        (events[1]?.content[RECORD_KEY] as Record<string, unknown>).user_id = "@bob:example.org";
        expect(verifyEvents(events, SENDER).problems.map((p) => [p.kind, p.seq])).toContainEqual(["hash_mismatch", 2]);
    });

    it("checks from a given seq", () => {
        const events = trail(10).filter((e) => e.event_id !== "$e2");
        expect(verifyEvents(events, SENDER, 3).intact).toBe(true);
        expect(verifyEvents(events, SENDER, 1).intact).toBe(false);
    });
});

/** A v2 trail, as the appservice posts it: full records with their content, salt and commitment. */
function trailV2(count: number): RoomEvent[] {
    const events: RoomEvent[] = [];
    let prev = GENESIS;
    let prevPosted: { seq: number; hash: string } | null = { seq: 0, hash: GENESIS };
    for (let seq = 1; seq <= count; seq++) {
        const content = `{"n":${seq}}`;
        const salt = createHash("sha256").update(`salt${seq}`).digest("hex").slice(0, 32);
        const commitment = `sha256:${createHash("sha256")
            .update(salt + content)
            .digest("hex")}`;
        const keyed = createHash("sha256").update(`key:${seq}`).digest("hex");
        const ts = 1_000_000 + seq * 1000;
        const link = { seq, changeId: `c${seq}`, ts, kind: "change", userId: ALICE, roomId: null, type: "m.t" };
        const hash = recordHashV2({
            ...link,
            contentSize: content.length,
            commitment,
            keyedDigest: keyed,
            prevHash: prev,
        });
        const record = {
            version: 1,
            kind: "change",
            seq,
            change_id: `c${seq}`,
            ts,
            user_id: ALICE,
            room_id: null,
            type: "m.t",
            level: "full",
            recovered: false,
            content_size: content.length,
            content_digest: `sha256:${createHash("sha256").update(content).digest("hex")}`,
            content,
            commitment,
            content_salt: salt,
            chain_version: 2,
            keyed_digest: keyed,
            prev_hash: prev,
            hash,
            prev_posted: prevPosted,
        };
        events.push(message(`$v${seq}`, SENDER, auditMessageBody(ALICE, null, "m.t", `{"n": ${seq}}`), record));
        prevPosted = { seq, hash };
        prev = hash;
    }
    return events;
}

const recordOf = (event: RoomEvent | undefined) => event?.content[RECORD_KEY] as Record<string, unknown>;

describe("verify with chain v2", () => {
    it("finds an intact trail intact, anchored at the chain's first record", () => {
        const report = verifyEvents(trailV2(10), SENDER);
        expect(report.problems).toEqual([]);
        expect(report).toMatchObject({ intact: true, records: 10, start: "genesis", newest: { seq: 10 } });
    });

    it("binds a shown content to the chain: content and its plain content_digest changed together are caught", () => {
        const events = trailV2(6);
        const copy = structuredClone(events[5] as RoomEvent);
        copy.event_id = "$forged";
        const forged = recordOf(copy);
        forged.content = '{"n":666}';
        forged.content_digest = `sha256:${createHash("sha256").update('{"n":666}').digest("hex")}`;
        copy.content.body = auditMessageBody(ALICE, null, "m.t", '{"n": 666}');
        const report = verifyEvents([...events, copy], SENDER);
        expect(report.intact).toBe(false);
        expect(report.problems.map((p) => [p.kind, p.seq, p.eventId])).toEqual([["content_mismatch", 6, "$forged"]]);
    });

    it("checks every copy: a second copy with other chained fields is a conflict, an identical one information", () => {
        const events = trailV2(6);
        const same = { ...(events[2] as RoomEvent), event_id: "$same" };
        // A token holder's copy of seq 4 with another time, its hash recomputed so that it checks out on its own.
        const other = structuredClone(events[3] as RoomEvent);
        other.event_id = "$other";
        const fields = recordOf(other);
        fields.ts = 5;
        fields.hash = recordHashV2({
            seq: 4,
            changeId: "c4",
            ts: 5,
            kind: "change",
            userId: ALICE,
            roomId: null,
            type: "m.t",
            contentSize: Number(fields.content_size),
            commitment: String(fields.commitment),
            keyedDigest: String(fields.keyed_digest),
            prevHash: String(fields.prev_hash),
        });
        // And one that does not even check out on its own.
        const broken = structuredClone(events[4] as RoomEvent);
        broken.event_id = "$broken";
        recordOf(broken).ts = 5;
        const report = verifyEvents([...events, same, other, broken], SENDER);
        expect(report.duplicates).toEqual([{ seq: 3, eventIds: ["$v3", "$same"] }]);
        expect(report.problems.map((p) => [p.kind, p.seq, p.eventId])).toEqual([
            ["conflicting_records", 4, "$other"],
            ["hash_mismatch", 5, "$broken"],
        ]);
    });

    it("counts a message from the sender without a chain after the chain began as a problem", () => {
        const events = [message("$old", SENDER, "an old message"), ...trailV2(3), message("$x", SENDER, "hello")];
        const report = verifyEvents(events, SENDER);
        expect(report.unchained).toBe(1);
        expect(report.problems.map((p) => [p.kind, p.eventId])).toEqual([["unchained", "$x"]]);
    });

    it("finds a trail whose oldest records are gone, unless --from says where to start", () => {
        const purged = trailV2(10).slice(3);
        const report = verifyEvents(purged, SENDER);
        expect(report.start).toBe("unanchored");
        expect(report.problems.map((p) => [p.kind, p.seq])).toEqual([["unanchored_start", 4]]);
        expect(verifyEvents(purged, SENDER, 4).intact).toBe(true);
    });

    it("finds redacted newest records", () => {
        const events = trailV2(10).map((e) =>
            e.event_id === "$v9" || e.event_id === "$v10"
                ? { ...e, content: {}, unsigned: { redacted_because: {} } }
                : e,
        );
        const report = verifyEvents(events, SENDER);
        expect(report.intact).toBe(false);
        expect(report.problems.map((p) => p.kind)).toEqual(["redacted", "redacted"]);
    });

    it("says when the newest record is older than the maximum age", () => {
        const events = trailV2(3);
        const newestTs = 1_000_000 + 3 * 1000;
        expect(verifyEvents(events, SENDER, 0, { maxAgeMs: 5000, now: newestTs + 4000 }).intact).toBe(true);
        const stale = verifyEvents(events, SENDER, 0, { maxAgeMs: 5000, now: newestTs + 6000 });
        expect(stale.problems.map((p) => [p.kind, p.seq])).toEqual([["stale", 3]]);
        expect(stale.problems[0]?.detail).toContain(new Date(newestTs).toISOString());
    });

    it("goes on where an incremental run stopped, reading only what is new", () => {
        const events = trailV2(30);
        const first = new TrailVerifier(SENDER, { settleMs: 5000 });
        for (const event of events.slice(0, 20)) first.add(event);
        expect(first.finish().intact).toBe(true);
        const resume = first.resumePoint();
        // Records within 5 s of the newest are left to the next run, which reads from the event before them.
        expect(resume?.verified.seq).toBe(15);
        expect(resume?.afterEventId).toBe("$v15");
        const next = new TrailVerifier(SENDER, { after: resume?.verified, skipEventIds: resume?.checkedAfter });
        const fromIndex = events.findIndex((e) => e.event_id === resume?.afterEventId) + 1;
        for (const event of events.slice(fromIndex)) next.add(event);
        expect(next.finish()).toMatchObject({ intact: true, start: "state", firstSeq: 16, lastSeq: 30 });
        // A copy of an already verified seq is compared with what the state keeps: identical is information,
        // another record (here one that does not even check out) a problem.
        const again = new TrailVerifier(SENDER, { after: resume?.verified });
        again.add({ ...(events[9] as RoomEvent), event_id: "$again" });
        expect(again.finish()).toMatchObject({ intact: true, duplicates: [{ seq: 10 }] });
        const late = new TrailVerifier(SENDER, { after: resume?.verified });
        const forged = structuredClone(events[9] as RoomEvent);
        recordOf(forged).ts = 1;
        late.add(forged);
        expect(late.finish().problems.map((p) => p.kind)).toEqual(["hash_mismatch"]);
    });
});
