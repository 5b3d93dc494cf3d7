/**
 * Exactly once across restarts: audit events are sent with the sender's device, so the homeserver keeps their
 * transaction IDs in its database and a resend after its restart returns the event it already has.
 */
import { describe, expect, it } from "vitest";
import type { TestEnv } from "../../src/devenv/TestEnv.js";
import { CHANGES_PATH } from "../../src/ingest/Protocol.js";
import {
    DATABASE,
    expectAllInOrderOnce,
    gapNotices,
    newUsers,
    outboxDepth,
    progressGate,
    resilientBurst,
} from "./helpers.js";
import { envForEachTest } from "./setup.js";

describe(`exactly once across restarts (${DATABASE})`, () => {
    let env: TestEnv;

    // These count audit events: one per change (digest mode, on by default, would group a backlog).
    envForEachTest(
        {
            database: DATABASE,
            appserviceConfig: { sending: { retry_initial_ms: 50, retry_max_ms: 1000, digest: { enabled: false } } },
        },
        (created) => (env = created),
    );

    it("a change sent again after both the homeserver and the appservice restarted is not posted twice", async () => {
        // The host module resends a batch whose acknowledgement was lost; here the test plays the host module,
        // so the replay is certain. Restarting the appservice empties its memory of handled changes, and
        // restarting Synapse empties its in-memory transaction-ID cache: only the device's stored ID is left.
        const alice = await env.newUser("alice");
        const change = {
            id: "replayed-change",
            seq: 1,
            ts: Date.now(),
            user_id: alice.userId,
            room_id: null,
            type: "org.example.replayed",
            content: '{"once":true}',
        };
        const post = async (): Promise<number> => {
            const res = await fetch(`http://127.0.0.1:${env.appservice.port}${CHANGES_PATH}`, {
                method: "POST",
                headers: {
                    Authorization: `Bearer ${env.registration.getHomeserverToken()}`,
                    "Content-Type": "application/json",
                },
                body: JSON.stringify({ changes: [change] }),
            });
            return res.status;
        };
        expect(await post()).toBe(200);
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.replayed"));

        await env.appservice.stop("SIGKILL");
        await env.restartSynapse();
        await env.appservice.start();
        expect(await post()).toBe(200);

        // A later change through the real pipeline: once it is in the room, the replay had its chance.
        await alice.setAccountData("org.example.after_replay", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after_replay"));
        const replayed = (await env.auditor.allMessages()).filter((e) =>
            String(e.content.body).includes("org.example.replayed"),
        );
        expect(replayed).toHaveLength(1);
    });

    it(
        "20 users × 100 changes: appservice SIGKILL and restart, then Synapse SIGTERM restart, mid-burst",
        { timeout: 600_000 },
        async () => {
            const users = await newUsers(env, "x", 20);
            const gate = progressGate();
            const burst = resilientBurst(users, 100, gate.progress);

            await env.auditor.waitForMessages(300, 180_000);
            await env.appservice.stop("SIGKILL");
            await gate.reached(600);
            await env.appservice.start();

            await gate.reached(1200);
            // While the appservice sends and the users write: the homeserver goes away under both.
            await env.restartSynapse();

            await burst;
            await env.auditor.waitForMessages(2000, 300_000);
            await expect.poll(() => outboxDepth(env), { timeout: 60_000 }).toBe(0);
            await env.auditor.syncOnce(0);
            expect(gapNotices(env.auditor.received)).toEqual([]);
            expect(env.auditor.received).toHaveLength(2000);
            expectAllInOrderOnce(env.auditor.received, users, 100);
            const verify = await env.verify();
            expect(verify.report?.problems).toEqual([]);
            expect(verify.code).toBe(0);
        },
    );
});
