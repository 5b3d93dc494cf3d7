import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { auditMessageBody } from "../../src/modules/audit/Messages.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { canonical, GENESIS, recordHash } from "../../src/verify/Chain.js";
import { verifyEvents } from "../../src/verify/Verifier.js";

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
