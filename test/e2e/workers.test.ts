/**
 * Synapse with workers (PostgreSQL and Redis): a generic worker is the account-data stream writer, the host
 * module records and delivers there, clients write through the main process. Run on PostgreSQL only.
 */
import { describe, expect, it } from "vitest";
import { HELD_WRITER_MODULE, type TestEnv } from "../../src/devenv/TestEnv.js";
import { auditBody, burstThroughFault, DATABASE, gapNotices, heldChanges, newUsers } from "./helpers.js";
import { envForEachTest } from "./setup.js";

describe.skipIf(DATABASE !== "postgres")("Synapse with an account-data writer worker", () => {
    let env: TestEnv;

    envForEachTest({ workers: true }, (created) => (env = created));

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
        const lost = await burstThroughFault(env, users, 50, 200, () => env.restartWorker({ signal: "SIGKILL" }));
        process.stderr.write(`SIGKILL of the writer worker mid-burst: ${lost} of 500 values lost\n`);
    });
});
