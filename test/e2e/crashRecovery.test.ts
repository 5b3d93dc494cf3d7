/**
 * Crash recovery: changes Synapse committed but the outbox never got (SIGKILL inside the writer's window) are
 * recovered from Synapse's own tables at the next start, once each; a key changed twice in the window gets
 * its newest value and one gap notice.
 */
import { describe, expect, it } from "vitest";
import { HELD_WRITER_MODULE, type TestEnv } from "../../src/devenv/TestEnv.js";
import {
    burstThroughFault,
    COUNTER_TYPE,
    DATABASE,
    gapNotices,
    heldChanges,
    newUsers,
    outboxDepth,
} from "./helpers.js";
import { envForEachTest } from "./setup.js";

describe(`crash recovery (${DATABASE})`, () => {
    let env: TestEnv;

    envForEachTest({ database: DATABASE }, (created) => (env = created));

    it("recovers every change held in the writer's window at SIGKILL, once each, with a gap notice for a key changed twice", async () => {
        const [alice, bob] = await newUsers(env, "h", 2);
        if (!alice || !bob) throw new Error("users");
        const room = await alice.createRoom();
        const body = (user: string, type: string, json: string, inRoom?: string): string =>
            `${user} has changed their account data for type ${type} to: ${json}` +
            (inRoom ? ` (in room ${inRoom})` : "");

        // Recorded normally before the crash: must not come back.
        await alice.setAccountData("org.example.before", '{"v":1}');
        await env.auditor.waitForRoomEvent(
            (e) => e.content.body === body(alice.userId, "org.example.before", '{"v": 1}'),
        );

        await env.restartSynapse({ module: HELD_WRITER_MODULE });
        await alice.setAccountData("org.example.x", '{"x":1}');
        await alice.setRoomAccountData(room, "org.example.r", '{"r":1}');
        await bob.setAccountData("org.example.z", '{"z":1.0}');
        // Last, so that no other key's range holds the overwritten value and the notice can name this key alone.
        await alice.setAccountData("org.example.k", '{"v":"a"}');
        await alice.setAccountData("org.example.k", '{"v":"b"}');
        // Every callback ran and queued its change; none was written.
        await expect.poll(() => heldChanges(env.synapse.logPath), { timeout: 30_000 }).toBe(5);
        expect(await outboxDepth(env)).toBe(0);

        await env.restartSynapse({ signal: "SIGKILL" });
        await env.auditor.waitForMessages(6, 120_000);
        await alice.setAccountData("org.example.after", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after"));

        const bodies = env.auditor.bodies();
        const [gap, ...moreGaps] = gapNotices(env.auditor.received);
        expect(moreGaps).toEqual([]);
        expect(gap?.content.body).toBe(
            `Audit gap: up to 1 earlier value of ${alice.userId}'s account data of type org.example.k may be missing ` +
                "here: the homeserver stopped uncleanly before they could be recorded, and it keeps only the latest " +
                "value of each type. Its latest value was recovered and is recorded after this notice.",
        );
        const recovered = [
            body(alice.userId, "org.example.x", '{"x": 1}'),
            body(alice.userId, "org.example.r", '{"r": 1}', room),
            body(alice.userId, "org.example.k", '{"v": "b"}'),
        ];
        // The notice runs alone, after what came before and before the recovered records; users overlap.
        expect(bodies.slice(0, 2)).toEqual([body(alice.userId, "org.example.before", '{"v": 1}'), gap?.content.body]);
        expect(bodies.slice(2, 6).sort()).toEqual(
            [...recovered, body(bob.userId, "org.example.z", '{"z": 1.0}')].sort(),
        );
        expect(bodies.slice(2, 6).filter((b) => b.startsWith(alice.userId))).toEqual(recovered);
        expect(bodies.slice(6)).toEqual([body(alice.userId, "org.example.after", "{}")]);
        expect((await env.verify()).report).toMatchObject({ intact: true, records: 7 });
        expect(await outboxDepth(env)).toBe(0);
    });

    it("a clean restart recovers nothing", async () => {
        const [carol] = await newUsers(env, "c", 1);
        if (!carol) throw new Error("user");
        for (let n = 0; n < 5; n++) await carol.setAccountData(COUNTER_TYPE, `{"n":${n}}`);
        await env.auditor.waitForMessages(5);
        await env.restartSynapse();
        await carol.setAccountData("org.example.after", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after"));
        expect(env.auditor.received).toHaveLength(6);
        expect(env.synapse.logTail(400)).toContain("Account-data audit recovery: nothing missing");
    });

    it(
        "SIGKILL of Synapse mid-burst: nothing twice, each user's order kept, any lost value named by a gap notice",
        { timeout: 600_000 },
        async () => {
            const users = await newUsers(env, "k", 20);
            const lost = await burstThroughFault(env, users, 50, 500, () => env.restartSynapse({ signal: "SIGKILL" }));
            const gaps = gapNotices(env.auditor.received);
            process.stderr.write(
                `SIGKILL mid-burst (${DATABASE}): ${lost} of 1000 values lost, ${gaps.length} gap notices\n`,
            );
        },
    );
});
