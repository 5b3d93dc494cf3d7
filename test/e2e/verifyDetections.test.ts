/**
 * Every detection `verify` documents (README, "Verifying the trail"), produced on a real Synapse the way an
 * attacker would: a genuine trail is written by the whole pipeline (single records, one left out by the audit
 * policy, a withheld secret, a digest), then each test copies it into a room of its own as the sender (the
 * appservice's token, client-server API) with its forgery (a second copy with changed fields, a record
 * inserted or cut, an edit, a redaction by the room's creator, a purge, a look-alike from another member), and
 * `verify` run as an auditor must name exactly that problem, with its seq, and exit 1. A faithful copy passes,
 * so each problem is the forgery's alone. (Redactions, a record lost before the room, a body copied by another
 * member, a forged content and a stopped trail are also covered in trail.test.ts and verifyTrail.test.ts.)
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MatrixHttp, RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { waitUntil } from "../../src/devenv/net.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import {
    contentCopy,
    eventOf,
    type Fields,
    postAsSender,
    problemsOf,
    purgeBefore,
    recordOf,
    redact,
    rehash,
    replayRoom,
    seqsOf,
    verifyRoom,
} from "./forgedRooms.js";
import { DATABASE, outboxDepth, reportOnFailure } from "./helpers.js";

describe(`verify's detections, each produced in a real room (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;
    let bob: MatrixHttp;
    /** The genuine trail: the audit room's events, in room order. */
    let trail: RoomEvent[];
    /** Seqs of the genuine trail: the one left out by the policy, the records around it, the secret's. */
    let omitted: number;
    let secret: number;
    let digest: RoomEvent;
    let stateDir: string;

    const single = (type: string, value: string) =>
        trail.find((e) => recordOf(e)?.type === type && String(e.content.body).endsWith(value)) as RoomEvent;

    beforeAll(async () => {
        env = await createTestEnv({
            database: DATABASE,
            appserviceConfig: {
                audit: { rules: [{ types: ["org.example.noise"], level: "none" }] },
                sending: {
                    retry_initial_ms: 50,
                    retry_max_ms: 1000,
                    digest: { enabled: true, min_backlog: 2, max_changes: 10, lanes: 1 },
                },
            },
        });
        [alice, bob] = await Promise.all([env.newUser("alice"), env.newUser("bob")]);
        stateDir = await mkdtemp(join(tmpdir(), "verify-detections-"));
        const posted = (type: string) =>
            env.auditor.waitForRoomEvent((e) => JSON.stringify(recordOf(e) ?? null).includes(`"${type}"`));
        await alice.setAccountData("org.example.k", '{"i":1}');
        await posted("org.example.k");
        await alice.setAccountData("org.example.noise", '{"i":1}'); // left out by the policy
        await alice.setAccountData("org.example.k", '{"i":2}');
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).endsWith('{"i": 2}'));
        await bob.setAccountData("m.secret_storage.key.abc", '{"iv":"x","mac":"y"}'); // withheld: metadata
        await posted("m.secret_storage.key.abc");
        // A backlog of five goes out as a digest. The host module sends each change as it comes until it learns
        // that the appservice is down (a change so sent goes alone for good): the backlog starts after that.
        await env.appservice.stop();
        await alice.setAccountData("org.example.while_down", '{"n":-1}');
        await waitUntil(
            "the host module to find the appservice down",
            async () => readFileSync(env.synapse.logPath, "utf8").includes("Could not deliver"),
            10_000,
        );
        for (let n = 0; n < 5; n++) await alice.setAccountData(`org.example.d${n}`, `{"n":${n}}`);
        await waitUntil("6 changes in the outbox", async () => (await outboxDepth(env)) === 6, 10_000);
        await env.appservice.start();
        await posted("org.example.d4");
        await alice.setAccountData("org.example.k", '{"i":3}');
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).endsWith('{"i": 3}'));
        trail = await env.auditor.allMessages();

        const second = recordOf(single("org.example.k", '{"i": 2}'));
        omitted = second.seq - 1;
        expect(second.prev_posted).toEqual({
            seq: omitted - 1,
            hash: recordOf(single("org.example.k", '{"i": 1}')).hash,
        });
        secret = recordOf(trail.find((e) => recordOf(e)?.type === "m.secret_storage.key.abc")).seq;
        digest = trail.find((e) => recordOf(e)?.kind === "digest") as RoomEvent;
        expect(seqsOf(digest).length).toBeGreaterThanOrEqual(3);
    });
    afterAll(async () => {
        await env?.tearDown();
        if (stateDir) await rm(stateDir, { recursive: true, force: true });
    });

    it("finds the genuine room, and a faithful copy with an identical resend, intact", async (ctx) => {
        reportOnFailure(() => env, ctx.onTestFailed);
        const genuine = await env.verify(["--max-age", "0"]);
        expect(genuine.report).toMatchObject({ intact: true, start: "genesis", omittedByPolicy: 1, problems: [] });
        const resent = eventOf(trail, secret);
        const { roomId, eventIds } = await replayRoom(env, [...trail, resent]);
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(0);
        expect(run.report).toMatchObject({
            intact: true,
            start: "genesis",
            records: genuine.report?.records,
            omittedByPolicy: 1,
            problems: [],
            duplicates: [{ seq: secret, eventIds: [eventIds[trail.indexOf(resent)], eventIds.at(-1)] }],
        });
    });

    it("broken_link: a record inserted for the seq the policy left out, chained to neither neighbour", async () => {
        const forged = contentCopy(eventOf(trail, omitted - 1));
        const record = forged[RECORD_KEY] as Fields;
        // The same change (so its body and commitment hold) with its own seq and a valid hash, but linked to no
        // record of the chain; the next record links to the real (omitted) record and declares omitted - 1.
        Object.assign(record, {
            seq: omitted,
            change_id: "f".repeat(32),
            prev_hash: "1".repeat(64),
            prev_posted: null,
        });
        rehash(record);
        const { roomId, eventIds } = await replayRoom(env, [...trail, forged]);
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        const next = eventIds[trail.indexOf(eventOf(trail, omitted + 1))];
        expect(problemsOf(run)).toMatchObject([
            {
                kind: "broken_link",
                seq: omitted,
                eventId: eventIds.at(-1),
                detail: `prev_hash is not the hash of seq ${omitted - 1}`,
            },
            {
                kind: "broken_link",
                seq: omitted + 1,
                eventId: next,
                detail: `prev_hash is not the hash of seq ${omitted}`,
            },
            {
                kind: "broken_link",
                seq: omitted + 1,
                eventId: next,
                detail: `says the record before it is seq ${omitted - 1}, but the room shows seq ${omitted}`,
            },
        ]);
    });

    it("conflicting_records: a second copy of a seq, a different record with a valid hash", async () => {
        const original = eventOf(trail, omitted + 1);
        const forged = contentCopy(original);
        rehash(Object.assign(forged[RECORD_KEY] as Fields, { change_id: "e".repeat(32) }));
        const { roomId, eventIds } = await replayRoom(env, [...trail, forged]);
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([
            { kind: "conflicting_records", seq: omitted + 1, eventId: eventIds.at(-1) },
        ]);
    });

    it("hash_mismatch: a copy whose fields do not give its hash (its time changed)", async () => {
        const forged = contentCopy(eventOf(trail, secret));
        const record = forged[RECORD_KEY] as Fields;
        record.ts = Number(record.ts) - 3_600_000;
        const { roomId, eventIds } = await replayRoom(env, [...trail, forged]);
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([{ kind: "hash_mismatch", seq: secret, eventId: eventIds.at(-1) }]);
    });

    it("hash_mismatch inside a digest: one record of a digest's copy changed", async () => {
        const forged = contentCopy(digest);
        const records = (forged[RECORD_KEY] as { records: Fields[] }).records;
        const victim = records[2] as Fields;
        victim.change_id = "d".repeat(32);
        const { roomId, eventIds } = await replayRoom(env, [...trail, forged]);
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([{ kind: "hash_mismatch", seq: victim.seq, eventId: eventIds.at(-1) }]);
    });

    it("content_mismatch inside a digest: a shown content and its line changed together", async () => {
        const forged = contentCopy(digest);
        const records = (forged[RECORD_KEY] as { records: Fields[] }).records;
        const victim = records[1] as Fields;
        const shown = `{"n": ${(JSON.parse(String(victim.content)) as { n: number }).n}}`;
        victim.content = '{"n":99}';
        forged.body = String(forged.body).replace(shown, '{"n": 99}');
        expect(forged.body).not.toBe(digest.content.body);
        const { roomId, eventIds } = await replayRoom(env, [...trail, forged]);
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([
            { kind: "content_mismatch", seq: victim.seq, eventId: eventIds.at(-1) },
        ]);
    });

    it("body_mismatch: a copy whose body says something its record does not (a withheld digest rewritten)", async () => {
        const forged = contentCopy(eventOf(trail, secret));
        forged.body = String(forged.body).replace(/keyed digest [0-9a-f]{16}/, "keyed digest 0123456789abcdef");
        expect(forged.body).not.toBe(eventOf(trail, secret).content.body);
        const { roomId, eventIds } = await replayRoom(env, [...trail, forged]);
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([{ kind: "body_mismatch", seq: secret, eventId: eventIds.at(-1) }]);
    });

    it("missing: a record cut from the middle of the trail", async () => {
        const cut = eventOf(trail, secret);
        const { roomId } = await replayRoom(
            env,
            trail.filter((e) => e !== cut),
        );
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([{ kind: "missing", seq: secret }]);
    });

    it("unanchored_start: the oldest records purged from the room", async () => {
        const { roomId, eventIds } = await replayRoom(env, trail);
        const keptFrom = trail.indexOf(eventOf(trail, secret));
        await purgeBefore(env, roomId, eventIds[keptFrom] as string);
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([{ kind: "unanchored_start", seq: secret, eventId: eventIds[keptFrom] }]);
        expect(run.report?.firstSeq).toBe(secret);
    });

    it("redacted: a digest redacted by the room's creator, named with the last seq it held", async () => {
        const { roomId, eventIds } = await replayRoom(env, trail);
        const target = eventIds[trail.indexOf(digest)] as string;
        await redact(env, roomId, target);
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([
            // The record after it declares the digest's last seq: the gap is named there.
            { kind: "redacted", seq: seqsOf(digest).at(-1), eventId: target },
        ]);
    });

    it("edited: the sender's edit (m.replace) of an audit event", async () => {
        const { roomId, eventIds } = await replayRoom(env, trail);
        const target = eventIds[trail.indexOf(eventOf(trail, secret))] as string;
        const edit = await postAsSender(env, roomId, {
            msgtype: "m.text",
            body: "* nothing changed",
            "m.new_content": { msgtype: "m.text", body: "nothing changed" },
            "m.relates_to": { rel_type: "m.replace", event_id: target },
        });
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([
            { kind: "edited", seq: null, eventId: edit, detail: `${env.senderUserId} edited audit event ${target}` },
        ]);
    });

    it("look_alike: another member's copy carrying the structured record without the sentence", async () => {
        const { roomId } = await replayRoom(env, trail);
        const copy = contentCopy(eventOf(trail, secret));
        const fake = (
            await env.auditor.http.request<{ event_id: string }>(
                "PUT",
                `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/lookalike`,
                { msgtype: "m.text", body: "see the record", [RECORD_KEY]: copy[RECORD_KEY] },
            )
        ).event_id;
        const run = await verifyRoom(env, roomId, ["--sender", env.senderUserId]);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([
            {
                kind: "look_alike",
                seq: null,
                eventId: fake,
                detail: `an audit-like message from ${env.auditor.http.userId}`,
            },
        ]);
    });

    it("unchained: the sender's message without a hash chain after the chain began (before it: counted only)", async () => {
        const { roomId, eventIds } = await replayRoom(env, [
            { msgtype: "m.text", body: "an older version's message" },
            ...trail,
            { msgtype: "m.text", body: "a message without a record" },
        ]);
        const run = await verifyRoom(env, roomId);
        expect(run.code).toBe(1);
        expect(run.report?.unchained).toBe(1);
        expect(problemsOf(run)).toMatchObject([{ kind: "unchained", seq: null, eventId: eventIds.at(-1) }]);
    });

    it("late_copy: a record for a passed seq appearing after an incremental run", async () => {
        const { roomId } = await replayRoom(env, trail);
        const state = join(stateDir, "late.json");
        const first = await verifyRoom(env, roomId, ["--state", state]);
        expect(first.report?.problems).toEqual([]);
        // The seq the policy left out, which the earlier run passed: a valid record for it, posted later.
        const forged = contentCopy(eventOf(trail, omitted - 1));
        const record = forged[RECORD_KEY] as Fields;
        Object.assign(record, { seq: omitted, change_id: "c".repeat(32), prev_hash: record.hash, prev_posted: null });
        rehash(record);
        const late = await postAsSender(env, roomId, forged);
        const run = await verifyRoom(env, roomId, ["--state", state]);
        expect(run.code).toBe(1);
        expect(problemsOf(run)).toMatchObject([{ kind: "late_copy", seq: omitted, eventId: late }]);
    });
});
