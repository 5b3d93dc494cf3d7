/**
 * Digest mode on a real Synapse: a backlog goes out in few events (each one lane of users, posted side by
 * side), each change exactly once and in order, across an appservice SIGKILL and a Synapse restart mid-drain
 * (the grouping is recorded, so replays post the same events), and `verify` reads the digests.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { DeliveryTap } from "./deliveryTap.js";
import { countersByUser, DATABASE, expectAllInOrderOnce, newUsers, outboxDepth, reportOnFailure } from "./helpers.js";

interface SeqRecord {
    seq: number;
    kind?: string;
    records?: SeqRecord[];
}

/** Every seq the room's events carry, once per event that carries it (a digest carries each of its records'). */
function seqsInRoom(events: RoomEvent[]): number[] {
    return events.flatMap((e) => {
        const record = e.content[RECORD_KEY] as SeqRecord | undefined;
        if (!record) return [];
        return record.kind === "digest" ? (record.records ?? []).map((r) => r.seq) : [record.seq];
    });
}

describe(`digest mode (${DATABASE})`, () => {
    let env: TestEnv;
    // Between the host module and the appservice: sees every batch, and can keep acknowledgements from the host.
    const tap = new DeliveryTap(() => `http://127.0.0.1:${env.appservice.port}`);

    beforeAll(async () => {
        await tap.start();
        env = await createTestEnv({
            database: DATABASE,
            hostModuleConfig: { appservice_url: tap.url },
            appserviceConfig: {
                sending: {
                    retry_initial_ms: 50,
                    retry_max_ms: 1000,
                    digest: { enabled: true, min_backlog: 10, max_changes: 20 },
                },
            },
        });
        await env.auditor.catchUp();
    });
    afterAll(async () => {
        await env?.tearDown();
        await tap.stop();
    });

    it("drains a backlog in digests, and replays digests posted but never acknowledged once each, across an appservice SIGKILL and a Synapse restart", async ({
        onTestFailed,
    }) => {
        reportOnFailure(() => env, onTestFailed);
        const users = await newUsers(env, "d", 10);
        // The host module learns that the appservice wants digests from its first answer.
        await users[0]?.setAccountData("org.example.hello", "{}");
        await env.auditor.waitForMessages(1);

        await env.appservice.stop();
        for (let n = 0; n < 40; n++) {
            await Promise.all(users.map((u) => u.setAccountData("org.example.counter", `{"n":${n}}`)));
        }
        await expect.poll(() => outboxDepth(env), { timeout: 10_000 }).toBe(400);

        // From the first batch that holds a digest on, the appservice handles (posts) the batches, but the host
        // module never hears that it did.
        tap.hold((batch) => [...batch.groups.values()].some((size) => size > 1));
        await env.appservice.start();
        await tap.waitFor("a batch of digests posted, its acknowledgement held", (batches) =>
            batches.some((b) => b.held && b.status === 200 && typeof b.answer?.acknowledged_through === "number"),
        );
        const handled = tap.batches.filter((b) => b.held && b.status === 200);
        const ackedThrough = Math.max(...handled.map((b) => Number(b.answer?.acknowledged_through)));
        const posted = handled.flatMap((b) => b.seqs).filter((seq) => seq <= ackedThrough);
        expect(posted.length).toBeGreaterThan(0);
        // They are in the room, as digests ...
        await env.auditor.waitForRoomEvent(() => {
            const inRoom = new Set(seqsInRoom(env.auditor.received));
            return posted.every((seq) => inRoom.has(seq));
        });
        const postedDigests = env.auditor.received.filter((e) => {
            const record = e.content[RECORD_KEY] as SeqRecord;
            return record.kind === "digest" && record.records?.every((r) => posted.includes(r.seq));
        });
        expect(postedDigests.length).toBeGreaterThan(0);
        // ... and still in the outbox: nothing was acknowledged, so the host module has to send them again.
        const stillQueued = await env.synapse.query(
            `SELECT COUNT(*) FROM account_data_audit_outbox WHERE seq IN (${posted.join(",")})`,
        );
        expect(Number(stillQueued[0]?.[0])).toBe(posted.length);

        await env.appservice.stop("SIGKILL");
        expect(tap.dropHeld()).toBeGreaterThan(0); // the acknowledgements are lost with it
        const afterKill = tap.batches.length;
        await env.restartSynapse();
        await env.appservice.start();

        await env.auditor.waitForRoomEvent(() => {
            const seen = countersByUser(env.auditor.received);
            return users.every((u) => (seen.get(u.userId)?.length ?? 0) >= 40);
        }, 120_000);
        await expect.poll(() => outboxDepth(env), { timeout: 30_000 }).toBe(0);

        // The resend really happened: the host module sent every posted seq again, and the appservice took it.
        const resent = new Set(
            tap.batches
                .slice(afterKill)
                .filter((b) => b.status === 200)
                .flatMap((b) => b.seqs),
        );
        expect(posted.filter((seq) => !resent.has(seq))).toEqual([]);

        // ... and posted none of them a second time: every seq is in exactly one event of the room.
        await env.auditor.syncOnce(0);
        const events = await env.auditor.allMessages();
        const copies = new Map<number, number>();
        for (const seq of seqsInRoom(events)) copies.set(seq, (copies.get(seq) ?? 0) + 1);
        expect([...copies].filter(([, n]) => n !== 1)).toEqual([]);
        expect(copies.size).toBe(401);
        expectAllInOrderOnce(env.auditor.received, users, 40);

        const digests = env.auditor.received.filter(
            (e) => (e.content[RECORD_KEY] as { kind?: string }).kind === "digest",
        );
        expect(digests.length).toBeGreaterThan(0);
        expect(env.auditor.received.length).toBeLessThan(100); // 401 changes
        let interleaved = 0;
        for (const digest of digests) {
            const records = (digest.content[RECORD_KEY] as { records: { seq: number }[] }).records;
            expect(String(digest.content.body).split("\n")).toHaveLength(records.length);
            expect(records.length).toBeLessThanOrEqual(20);
            if (records.some((r, i) => i > 0 && r.seq !== (records[i - 1]?.seq ?? 0) + 1)) interleaved++;
        }
        // Users are spread over lanes (8 by default): a digest holds one lane's changes, so digests interleave.
        expect(interleaved).toBeGreaterThan(0);
        const verify = await env.verify();
        expect(verify.report?.problems).toEqual([]);
        expect(verify.report?.records).toBe(401);
    });
});
