/** Scenarios 3-5: nothing lost, nothing twice, order kept, across appservice and Synapse outages. */
import { describe, expect, it } from "vitest";
import type { TestEnv } from "../../src/devenv/TestEnv.js";
import { burst, DATABASE, expectAllInOrderOnce, newUsers, outboxDepth } from "./helpers.js";
import { envForEachTest } from "./setup.js";

describe(`delivery through outages (${DATABASE})`, () => {
    let env: TestEnv;

    // These count audit events: one per change (digest mode, on by default, would group a backlog).
    envForEachTest(
        {
            database: DATABASE,
            appserviceConfig: { sending: { retry_initial_ms: 50, retry_max_ms: 1000, digest: { enabled: false } } },
        },
        (created) => (env = created),
    );

    it("delivers 200 changes by 10 users made while the appservice was stopped", async () => {
        await env.appservice.stop();
        const users = await newUsers(env, "u", 10);
        await burst(users, 20);
        // The callback answers before its row is committed (milliseconds later).
        await expect.poll(() => outboxDepth(env), { timeout: 10_000 }).toBe(200);

        await env.appservice.start();
        await env.auditor.waitForMessages(200, 120_000);
        expectAllInOrderOnce(env.auditor.received, users, 20);
        await expect.poll(() => outboxDepth(env), { timeout: 10_000 }).toBe(0);
        // Nothing more trickles in once the outbox is empty.
        await env.auditor.syncOnce(0);
        expect(env.auditor.received).toHaveLength(200);
    });

    it("with max_in_flight 1, posts in exact sequence order, however the users' changes interleave", async () => {
        await env.appservice.stop();
        await env.writeAppserviceConfig({
            ...env.appserviceConfig,
            sending: { retry_initial_ms: 50, retry_max_ms: 1000, max_in_flight: 1, digest: { enabled: false } },
        });
        const users = await newUsers(env, "o", 3);
        // One PUT at a time, so the outbox's order is this order; runs of one user's changes next to
        // others' (a user's next change waits on its previous one, and must not let another user's go first).
        const pattern = [0, 0, 1, 0, 2, 2, 1, 1, 1, 0, 2, 0, 0, 0, 1, 2, 2, 2, 0, 1];
        const expected: string[] = [];
        for (const [i, u] of pattern.entries()) {
            const user = users[u] as (typeof users)[number];
            await user.setAccountData("org.example.order", `{"i":${i}}`);
            expected.push(`${user.userId} has changed their account data for type org.example.order to: {"i": ${i}}`);
        }
        await expect.poll(() => outboxDepth(env), { timeout: 10_000 }).toBe(pattern.length);
        await env.appservice.start();
        const events = await env.auditor.waitForMessages(pattern.length, 120_000);
        expect(events.map((e) => e.content.body)).toEqual(expected);
    });

    it("delivers every change of 50 users writing at once while delivery runs", async () => {
        // Many concurrent callbacks: on PostgreSQL their inserts commit out of order unless the outbox
        // serialises them, and a change recorded "late" must still be delivered.
        const users = await newUsers(env, "c", 50);
        await burst(users, 10);
        await env.auditor.waitForMessages(500, 240_000);
        await expect.poll(() => outboxDepth(env), { timeout: 60_000 }).toBe(0);
        await env.auditor.syncOnce(0);
        expect(env.auditor.received).toHaveLength(500);
        expectAllInOrderOnce(env.auditor.received, users, 10);
    });

    it(
        "loses nothing and posts nothing twice when the appservice is SIGKILLed mid-burst",
        { timeout: 400_000 },
        async () => {
            const users = await newUsers(env, "k", 10);
            const changes = burst(users, 100);
            // Kill it once it is demonstrably in the middle of the stream.
            await env.auditor.waitForMessages(100, 120_000);
            await env.appservice.stop("SIGKILL");
            await changes;
            await env.appservice.start();

            await env.auditor.waitForMessages(1000, 300_000);
            await expect.poll(() => outboxDepth(env), { timeout: 60_000 }).toBe(0);
            await env.auditor.syncOnce(0);
            expect(env.auditor.received).toHaveLength(1000);
            expectAllInOrderOnce(env.auditor.received, users, 100);
        },
    );

    it("keeps queued changes across a Synapse restart", async () => {
        await env.appservice.stop();
        const users = await newUsers(env, "r", 5);
        await burst(users, 10);
        await env.synapse.restart(); // right away: shutdown waits for pending outbox writes
        expect(await outboxDepth(env)).toBe(50);
        await env.appservice.start();
        await env.auditor.waitForMessages(50, 120_000);
        expectAllInOrderOnce(env.auditor.received, users, 10);
    });
});
