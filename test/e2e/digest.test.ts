/**
 * Digest mode on a real Synapse: a backlog goes out in few events (each one lane of users, posted side by
 * side), each change exactly once and in order, across an appservice SIGKILL and a Synapse restart mid-drain
 * (the grouping is recorded, so replays post the same events), and `verify` reads the digests.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { countersByUser, DATABASE, expectAllInOrderOnce, newUsers, outboxDepth } from "./helpers.js";

describe(`digest mode (${DATABASE})`, () => {
    let env: TestEnv;

    beforeAll(async () => {
        env = await createTestEnv({
            database: DATABASE,
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
    });

    it("drains a backlog in digests, each change once and in order, across an appservice SIGKILL and a Synapse restart", async () => {
        const users = await newUsers(env, "d", 10);
        // The host module learns that the appservice wants digests from its first answer.
        await users[0]?.setAccountData("org.example.hello", "{}");
        await env.auditor.waitForMessages(1);

        await env.appservice.stop();
        for (let n = 0; n < 40; n++) {
            await Promise.all(users.map((u) => u.setAccountData("org.example.counter", `{"n":${n}}`)));
        }
        await expect.poll(() => outboxDepth(env), { timeout: 10_000 }).toBe(400);
        await env.appservice.start();
        await expect.poll(() => outboxDepth(env), { timeout: 60_000 }).toBeLessThan(300);
        await env.appservice.stop("SIGKILL");
        await env.restartSynapse();
        await env.appservice.start();

        await env.auditor.waitForRoomEvent(() => {
            const seen = countersByUser(env.auditor.received);
            return users.every((u) => seen.get(u.userId)?.length === 40);
        }, 120_000);
        await expect.poll(() => outboxDepth(env), { timeout: 30_000 }).toBe(0);
        await env.auditor.syncOnce(0);
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
