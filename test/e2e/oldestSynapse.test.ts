/**
 * Smoke test for the ends of the supported Synapse range (README, "Install (admins)"): CI runs it against the
 * oldest supported Synapse (`npm run test:e2e:oldest`: AUDIT_VENV=.venv-oldest, AUDIT_E2E_SMOKE=1), where the
 * full suite does not run. One homeserver for the whole file, each step building on the last: changes reach
 * the room, the sender's device makes a resend after a restart harmless, a clean restart recovers nothing, a
 * SIGKILL is recovered, a deactivation is recorded. The full suite covers all of it on the newest Synapse, so
 * it is skipped there.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VENV } from "../../src/devenv/Synapse.js";
import { createTestEnv, HELD_WRITER_MODULE, type TestEnv } from "../../src/devenv/TestEnv.js";
import { CHANGES_PATH } from "../../src/ingest/Protocol.js";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";
import { auditBody, DATABASE, gapNotices, heldChanges, outboxDepth } from "./helpers.js";

/** The Synapse version installed in the venv under test, as pip recorded it. */
function installedSynapse(): string {
    return execFileSync(
        join(VENV, "bin", "python"),
        ["-c", "import importlib.metadata; print(importlib.metadata.version('matrix-synapse'))"],
        { encoding: "utf8" },
    ).trim();
}

describe.skipIf(!process.env.AUDIT_E2E_SMOKE)(`supported-range smoke (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;
    let room: string;

    beforeAll(async () => {
        // Counts audit events one per change: digest mode would group a backlog.
        env = await createTestEnv({
            database: DATABASE,
            appserviceConfig: { sending: { retry_initial_ms: 50, retry_max_ms: 1000, digest: { enabled: false } } },
        });
        await env.auditor.catchUp();
        alice = await env.newUser("alice");
        room = await alice.createRoom();
    });
    afterAll(async () => {
        if (env && process.env.AUDIT_KEEP_TEST_DIRS) process.stderr.write(`smoke test files: ${env.dir}\n`);
        await env?.tearDown();
    });

    it("the host module names this Synapse as supported, and the appservice sends with its device", async () => {
        const version = installedSynapse();
        process.stderr.write(`Smoke test on Synapse ${version} (${VENV})\n`);
        const log = readFileSync(env.synapse.logPath, "utf8");
        expect(log).toContain(`Account-data audit: Synapse ${version} is supported (`);
        // The host module's own checks of the tables it reads (compat.py; the tag and push-rule poller's).
        expect(log).not.toMatch(/shaped differently|crash recovery is off|does not have what the module reads/);
        // Without the device, transaction IDs die with the homeserver's memory (see SenderDevice): Synapse
        // before 1.141.0 ignores the device_id of appservice requests, and this metric is then 0.
        const metrics = await (await fetch(`http://127.0.0.1:${env.appservice.port}/metrics`)).text();
        expect(metrics).toMatch(/^account_data_audit_durable_transaction_ids 1$/m);
    });

    it("global and room changes, a deletion and a room tag reach the room, in order, once", async () => {
        await alice.setAccountData("org.example.theme", '{"theme":"dark","scale":1.0}');
        await alice.setRoomAccountData(room, "org.example.r", '{"r":1}');
        await alice.setAccountData("org.example.theme", "{}");
        await env.auditor.waitForMessages(3);
        expect(env.auditor.bodies()).toEqual([
            auditBody(alice.userId, "org.example.theme", '{"theme": "dark", "scale": 1.0}'),
            auditBody(alice.userId, "org.example.r", '{"r": 1}', room),
            auditBody(alice.userId, "org.example.theme", "{}"),
        ]);
        // Room tags never reach the callback: the module polls them from Synapse's tables.
        const tagPath = `/_matrix/client/v3/user/${encodeURIComponent(alice.userId)}/rooms/${encodeURIComponent(room)}/tags/m.favourite`;
        await alice.request("PUT", tagPath, { order: 0.25 });
        const tagBody = auditBody(alice.userId, "m.tag", '{"tags": {"m.favourite": {"order": 0.25}}}', room);
        await env.auditor.waitForRoomEvent((e) => e.content.body === tagBody, 30_000);
    });

    it("a change resent after the homeserver and the appservice restarted is posted once; the clean restart recovers nothing", async () => {
        // The test plays the host module resending a batch whose acknowledgement was lost (see exactlyOnce).
        const change = {
            id: "smoke-replayed",
            seq: 1_000_000,
            ts: Date.now(),
            user_id: alice.userId,
            room_id: null,
            type: "org.example.replayed",
            content: '{"once":true}',
        };
        const post = async (): Promise<number> =>
            (
                await fetch(`http://127.0.0.1:${env.appservice.port}${CHANGES_PATH}`, {
                    method: "POST",
                    headers: {
                        Authorization: `Bearer ${env.registration.getHomeserverToken()}`,
                        "Content-Type": "application/json",
                    },
                    body: JSON.stringify({ changes: [change] }),
                })
            ).status;
        expect(await post()).toBe(200);
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.replayed"));

        await env.appservice.stop("SIGKILL");
        await env.restartSynapse();
        await env.appservice.start();
        expect(await post()).toBe(200);
        await alice.setAccountData("org.example.after_restart", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after_restart"));
        const bodies = env.auditor.bodies();
        expect(bodies.filter((b) => b.includes("org.example.replayed"))).toHaveLength(1);
        expect(env.synapse.logTail(400)).toContain("Account-data audit recovery: nothing missing");
    });

    it("changes Synapse committed before a SIGKILL but the outbox never got are recovered, once each", async () => {
        const before = env.auditor.received.length;
        // A test build of the writer holds changes in memory (never writes them): the crash window, made wide.
        await env.restartSynapse({ module: HELD_WRITER_MODULE });
        await alice.setAccountData("org.example.lost", '{"v":1}');
        await alice.setRoomAccountData(room, "org.example.lost_r", '{"v":2}');
        await expect.poll(() => heldChanges(env.synapse.logPath), { timeout: 30_000 }).toBe(2);

        await env.restartSynapse({ signal: "SIGKILL" });
        await env.auditor.waitForMessages(before + 2, 120_000);
        await alice.setAccountData("org.example.after_crash", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after_crash"));
        expect(env.auditor.bodies().slice(before)).toEqual([
            auditBody(alice.userId, "org.example.lost", '{"v": 1}'),
            auditBody(alice.userId, "org.example.lost_r", '{"v": 2}', room),
            auditBody(alice.userId, "org.example.after_crash", "{}"),
        ]);
        expect(gapNotices(env.auditor.received)).toEqual([]);
    });

    it("a deactivation is recorded, and the outbox empties", async () => {
        await env.auditor.http.request("POST", `/_synapse/admin/v1/deactivate/${encodeURIComponent(alice.userId)}`, {
            erase: false,
        });
        const notice = await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("was deactivated"));
        expect(notice.content.body).toBe(
            `${alice.userId} was deactivated by a server admin. The homeserver deleted all their account data with ` +
                "it, without reporting each type: this record stands for those deletions.",
        );
        // (No `verify` here: the replayed change above was posted outside the host module's chain.)
        await expect.poll(() => outboxDepth(env), { timeout: 60_000 }).toBe(0);
    });
});
