/**
 * The room create-room makes, as auditors see it (README, "Setting up the audit room"), from the commands README
 * gives: a registration written by `-r --alias` lets `create-room --alias` publish the alias; the room, read as an
 * auditor, is the sender's, invite-only, unfederated, with shared history and power levels under which only the
 * sender posts; an auditor invited (with `invite`) after 10 records reads all 10; an auditor's post is refused.
 */
import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAIN_JS } from "../../src/devenv/AppserviceProcess.js";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { DATABASE, outboxDepth } from "./helpers.js";

function runMain(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
        execFile(process.execPath, [MAIN_JS, ...args], (err, stdout, stderr) => {
            resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
        });
    });
}

/** What a library object dumped on the terminal looks like (e.g. `MatrixError { errcode: ... }`, `body: {`). */
const DUMPED_OBJECT = /errcode|statusCode|\{\s*$|\[Object|IncomingMessage|at .*\.js:\d+/m;

describe(`the audit room create-room makes (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;
    let roomId: string;
    const state = <T>(type: string) =>
        env.auditor.http.request<T>("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${type}/`);

    beforeAll(async () => {
        env = await createTestEnv({
            database: DATABASE,
            // One audit event per change, so the auditor counts 10.
            appserviceConfig: { sending: { retry_initial_ms: 50, retry_max_ms: 1000, digest: { enabled: false } } },
        });
        alice = await env.newUser("alice");
    }, 120_000);
    afterAll(async () => env?.tearDown());

    const alias = () => `#account-data-audit:${env.synapse.serverName}`;
    const files = () => ["-c", env.configPath, "-f", env.registrationPath];

    it("create-room --alias says clearly when the registration does not reserve the alias", async () => {
        const run = await runMain(["create-room", ...files(), "--alias", alias()]);
        expect(run.code).toBe(1);
        expect(run.stderr).toContain(`does not reserve ${alias()}`);
        expect(run.stderr).toContain("-r --alias");
        expect(run.stderr).not.toMatch(DUMPED_OBJECT);
    });

    it("with a registration written by -r --alias, create-room --alias creates the room quietly", async () => {
        await env.appservice.stop();
        const url = `http://127.0.0.1:${env.appservice.port}`;
        const written = await runMain([
            "-r",
            "-u",
            url,
            "-f",
            env.registrationPath,
            "-l",
            "account-data-audit",
            "--alias",
            alias(),
        ]);
        expect(written.code).toBe(0);
        await env.restartSynapse(); // Synapse reads registrations, and the host module its token, at start
        // The sender exists already (the appservice registered it): that is no error to show.
        const run = await runMain(["create-room", ...files(), "--alias", alias()]);
        expect(run.code).toBe(0);
        roomId = run.stdout.trim();
        expect(roomId).toMatch(/^!/);
        expect(run.stderr).not.toMatch(/M_USER_IN_USE|error/i);
        expect(run.stderr).not.toMatch(DUMPED_OBJECT);
        expect(run.stderr).toContain(`invite -c ${env.configPath} -f ${env.registrationPath} @auditor:server`);
        const resolved = await env.auditor.http.request<{ room_id: string }>(
            "GET",
            `/_matrix/client/v3/directory/room/${encodeURIComponent(alias())}`,
        );
        expect(resolved.room_id).toBe(roomId);
        await env.writeAppserviceConfig({ ...env.appserviceConfig, audit_room: alias() });
        await env.appservice.start();
    });

    it("an auditor invited after 10 records reads all 10, and sees the room as the sender's", async () => {
        expect(roomId).toBeDefined();
        for (let i = 0; i < 10; i++) await alice.setAccountData(`org.example.before_invite_${i}`, `{"i": ${i}}`);
        await expect.poll(() => outboxDepth(env), { timeout: 60_000 }).toBe(0);
        const invited = await runMain(["invite", ...files(), env.auditor.http.userId]);
        expect(invited.code).toBe(0);
        expect(invited.stderr).not.toMatch(DUMPED_OBJECT);
        await env.auditor.http.join(roomId);

        const { chunk } = await env.auditor.http.messages(roomId);
        const records = chunk.filter((e) => e.type === "m.room.message" && RECORD_KEY in e.content);
        expect(records.map((e) => String(e.content.body).match(/before_invite_\d/)?.[0])).toEqual(
            Array.from({ length: 10 }, (_, i) => `before_invite_${i}`),
        );
        expect(records.every((e) => e.sender === env.senderUserId)).toBe(true);

        const create = chunk.find((e) => e.type === "m.room.create");
        expect(create?.sender).toBe(env.senderUserId);
        expect(create?.content["m.federate"]).toBe(false);
        expect(await state<{ join_rule: string }>("m.room.join_rules")).toEqual({ join_rule: "invite" });
        expect(await state("m.room.history_visibility")).toEqual({ history_visibility: "shared" });
        const levels = await state<Record<string, unknown> & { users?: Record<string, number> }>("m.room.power_levels");
        expect(levels).toMatchObject({
            events_default: 100,
            users_default: 0,
            redact: 100,
            state_default: 100,
            invite: 100,
        });
        expect(levels.users?.[env.auditor.http.userId]).toBeUndefined();
        await expect(state("m.room.encryption")).rejects.toThrow(/404/);
    });

    it("an auditor cannot post into it", async () => {
        await expect(env.auditor.http.sendText(roomId, "an audit-looking line")).rejects.toThrow(/403 M_FORBIDDEN/);
    });

    it("/health finds nothing wrong with it", async () => {
        const health = (await (await fetch(`http://127.0.0.1:${env.appservice.port}/health`)).json()) as {
            audit_room: { problems: unknown[] };
        };
        expect(health.audit_room.problems).toEqual([]);
    });
});
