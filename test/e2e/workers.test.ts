/**
 * Synapse with workers (PostgreSQL and Redis): a generic worker is the account-data stream writer, the host
 * module records and delivers there, clients write through the main process. Run on PostgreSQL only.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createTestEnv, HELD_WRITER_MODULE, type TestEnv } from "../../src/devenv/TestEnv.js";
import {
    auditBody,
    DATABASE,
    countersByUser,
    expectOnceInOrderOrNoticed,
    gapNotices,
    heldChanges,
    newUsers,
    outboxDepth,
    progressGate,
    resilientBurst,
} from "./helpers.js";

describe.skipIf(DATABASE !== "postgres")("Synapse with an account-data writer worker", () => {
    let env: TestEnv;

    beforeEach(async ({ onTestFailed }) => {
        env = await createTestEnv({ workers: true });
        await env.auditor.catchUp();
        onTestFailed(async () => {
            process.stderr.write(
                `\n--- ${env.auditor.received.length} audit messages received\n` +
                    `--- appservice output (tail):\n${env.appservice.output.slice(-3000)}\n` +
                    `--- homeserver.log (tail):\n${env.synapse.logTail(40)}\n` +
                    `--- worker.log (tail):\n${env.synapse.logTail(60, env.synapse.workerLogPath)}\n`,
            );
        });
    });
    afterEach(async () => {
        await env?.tearDown();
    });

    it("recovers on the writer worker what it held when it was SIGKILLed", async () => {
        const [alice, bob] = await newUsers(env, "w", 2);
        if (!alice || !bob) throw new Error("users");
        await alice.setAccountData("org.example.before", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.before"));

        await env.restartWorker({ module: HELD_WRITER_MODULE });
        await alice.setAccountData("org.example.x", '{"x":1}');
        await bob.setAccountData("org.example.z", '{"z":2}');
        await alice.setAccountData("org.example.k", '{"v":"a"}');
        await alice.setAccountData("org.example.k", '{"v":"b"}');
        await expect.poll(() => heldChanges(env.synapse.workerLogPath), { timeout: 30_000 }).toBe(4);

        // Only the worker dies; the main process keeps serving (and does not recover: it writes nothing).
        await env.restartWorker({ signal: "SIGKILL" });
        await env.auditor.waitForMessages(5, 120_000);
        await alice.setAccountData("org.example.after", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after"));

        const bodies = env.auditor.bodies();
        expect(gapNotices(env.auditor.received).map((e) => String(e.content.body))).toEqual([
            expect.stringContaining(`up to 1 earlier value of ${alice.userId}'s account data of type org.example.k `),
        ]);
        expect(bodies.filter((b) => !b.startsWith("Audit gap")).sort()).toEqual(
            [
                auditBody(alice.userId, "org.example.before", "{}"),
                auditBody(alice.userId, "org.example.x", '{"x": 1}'),
                auditBody(bob.userId, "org.example.z", '{"z": 2}'),
                auditBody(alice.userId, "org.example.k", '{"v": "b"}'),
                auditBody(alice.userId, "org.example.after", "{}"),
            ].sort(),
        );
        expect(env.synapse.logTail(400)).not.toContain("Recovered");
    });

    it("10 users × 50 changes through the main process, writer worker SIGKILLed mid-burst: once each, in order", async () => {
        const users = await newUsers(env, "b", 10);
        const gate = progressGate();
        const burst = resilientBurst(users, 50, gate.progress);
        await gate.reached(200);
        await env.restartWorker({ signal: "SIGKILL" });
        await burst;
        await env.auditor.waitForRoomEvent(() => {
            const seen = countersByUser(env.auditor.received);
            return users.every((u) => seen.get(u.userId)?.at(-1) === 49);
        }, 300_000);
        await expect.poll(() => outboxDepth(env), { timeout: 60_000 }).toBe(0);
        await env.auditor.syncOnce(0);
        const lost = expectOnceInOrderOrNoticed(env.auditor.received, users, 50);
        expect((await env.verify()).report?.problems).toEqual([]);
        process.stderr.write(`SIGKILL of the writer worker mid-burst: ${lost} of 500 values lost\n`);
    });
});
