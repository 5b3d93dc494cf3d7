/**
 * The tamper-evident trail on a real Synapse: `verify` finds an intact room intact, and names the seq when a
 * room admin redacts an audit event, when a record never reaches the room, and when someone else posts a
 * copy of an audit event. Deactivations are records of their own; /health reports the room's safety.
 */
import { execFile } from "node:child_process";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";
import { MAIN_JS } from "../../src/devenv/AppserviceProcess.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { DATABASE, newUsers, outboxDepth, reportOnFailure } from "./helpers.js";

/** Runs the appservice's command line to its end. */
function runMain(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
        execFile(process.execPath, [MAIN_JS, ...args], (err, stdout, stderr) => {
            resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
        });
    });
}

describe(`the tamper-evident trail (${DATABASE})`, () => {
    let env: TestEnv;
    let users: MatrixHttp[];

    beforeEach(async ({ onTestFailed }) => {
        env = await createTestEnv({
            database: DATABASE,
            appserviceConfig: {
                audit: { rules: [{ types: ["org.example.noise"], level: "none" }] },
                // One audit event per change (counted below; digest mode, on by default, groups a backlog).
                sending: { retry_initial_ms: 50, retry_max_ms: 1000, digest: { enabled: false } },
            },
        });
        users = await newUsers(env, "t", 3);
        await env.auditor.catchUp();
        reportOnFailure(() => env, onTestFailed);
    });
    afterEach(async () => {
        await env?.tearDown();
    });

    /** Each user changes `n` keys, some of them left out by the audit policy; resolves once all are in. */
    async function changes(n: number): Promise<void> {
        const before = env.auditor.received.length;
        for (let i = 0; i < n; i++) {
            for (const user of users) {
                await user.setAccountData("org.example.noise", `{"i":${i}}`);
                await user.setAccountData(`org.example.k${i % 3}`, `{"i":${i}}`);
            }
        }
        await env.auditor.waitForMessages(before + n * users.length, 60_000);
    }

    it("verify finds an intact trail intact, across a restart of both sides, and counts what the policy left out", async () => {
        await changes(5);
        await env.appservice.stop("SIGKILL");
        await env.restartSynapse();
        await env.appservice.start();
        await changes(5);
        const { code, report } = await env.verify();
        expect(code).toBe(0);
        // 30 changes left out, the first of them before the first record the room shows, which says so: the trail
        // is anchored at the chain's start.
        expect(report).toMatchObject({
            intact: true,
            records: 30,
            omittedByPolicy: 30,
            start: "genesis",
            problems: [],
        });
    });

    it("verify names the seq of an audit event a room admin redacted", async () => {
        await changes(3);
        const victim = env.auditor.received[4];
        const seq = (victim?.content[RECORD_KEY] as { seq: number }).seq;
        await env.auditor.http.request(
            "PUT",
            `/_matrix/client/v3/rooms/${encodeURIComponent(env.auditRoomId)}/redact/${encodeURIComponent(String(victim?.event_id))}/r1`,
            { reason: "tidying up" },
        );
        const { code, report } = await env.verify();
        expect(code).toBe(1);
        expect(report?.problems).toEqual([
            { kind: "redacted", seq, eventId: victim?.event_id, detail: `the audit event of seq ${seq} was redacted` },
        ]);
    });

    it("verify names the seq of a record that never reached the room", async () => {
        await env.appservice.stop();
        const [alice] = users as [MatrixHttp];
        for (const key of ["a", "b", "c"]) await alice.setAccountData(`org.example.${key}`, "{}");
        await expect.poll(() => outboxDepth(env), { timeout: 10_000 }).toBe(3);
        const [[lost]] = (await env.synapse.query(
            "SELECT seq FROM account_data_audit_outbox WHERE account_data_type = 'org.example.b'",
        )) as [[number]];
        await env.synapse.query(`DELETE FROM account_data_audit_outbox WHERE seq = ${lost}`);
        await env.appservice.start();
        await env.auditor.waitForMessages(2);
        const { code, report } = await env.verify();
        expect(code).toBe(1);
        expect(report?.problems).toMatchObject([{ kind: "missing", seq: lost }]);
    });

    it("verify names a copy of an audit event posted by someone else", async () => {
        await changes(1);
        const original = env.auditor.received[0];
        const fake = await env.auditor.http.sendText(env.auditRoomId, String(original?.content.body));
        const { code, report } = await env.verify();
        expect(code).toBe(1);
        expect(report?.problems).toMatchObject([{ kind: "look_alike", eventId: fake }]);
    });

    it("records a deactivation (Synapse then deletes the account data silently), chained like the rest", async () => {
        const [alice] = users as [MatrixHttp];
        await alice.setAccountData("org.example.before", "{}");
        await env.auditor.http.request("POST", `/_synapse/admin/v1/deactivate/${encodeURIComponent(alice.userId)}`, {
            erase: false,
        });
        const notice = await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("was deactivated"));
        expect(notice.content.msgtype).toBe("m.notice");
        expect(notice.content.body).toBe(
            `${alice.userId} was deactivated by a server admin. The homeserver deleted all their account data with ` +
                "it, without reporting each type: this record stands for those deletions.",
        );
        expect(notice.content[RECORD_KEY]).toMatchObject({
            kind: "deactivation",
            user_id: alice.userId,
            by_admin: true,
        });
        expect((await env.verify()).code).toBe(0);
    });

    it("create-room makes an audit room that passes the safety checks", async () => {
        const run = await runMain([
            "create-room",
            "-c",
            env.configPath,
            "-f",
            env.registrationPath,
            "--invite",
            env.auditor.http.userId,
        ]);
        expect(run.code).toBe(0);
        const roomId = run.stdout.trim();
        await env.auditor.http.join(roomId);
        await env.appservice.stop();
        await env.writeAppserviceConfig({ ...env.appserviceConfig, audit_room: roomId });
        await env.appservice.start();
        const health = (await (await fetch(`http://127.0.0.1:${env.appservice.port}/health`)).json()) as {
            audit_room: { problems: unknown[] };
        };
        expect(health.audit_room.problems).toEqual([]);
        // A room member below the redaction level cannot remove audit events.
        const [alice] = users as [MatrixHttp];
        await alice.setAccountData("org.example.in_new_room", "{}");
        const find = async () =>
            (await env.auditor.http.messages(roomId)).chunk.find((e) =>
                String(e.content.body).includes("org.example.in_new_room"),
            );
        await expect.poll(find, { timeout: 30_000 }).toBeDefined();
        const event = await find();
        await expect(
            env.auditor.http.request(
                "PUT",
                `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/redact/${encodeURIComponent(String(event?.event_id))}/x`,
                {},
            ),
        ).rejects.toThrow(/403 M_FORBIDDEN/);
    });

    it("/health reports the audit room's safety problems", async () => {
        const res = await fetch(`http://127.0.0.1:${env.appservice.port}/health`);
        const health = (await res.json()) as { status: string; audit_room: { problems: { code: string }[] } };
        expect(res.status).toBe(200);
        expect(health.status).toBe("ok");
        // The test room's creator (the auditor) has power level 100: it may redact, and post (events_default 0).
        expect(health.audit_room.problems.map((p) => p.code)).toEqual(["redactors", "posters"]);
        expect(env.appservice.output).toContain("is not safe for an audit trail: users besides the sender may redact");
    });
});
