/**
 * The room create-room makes, judged as an auditor judges it (README, "Setting up the audit room"): from the
 * commands README gives (a registration written by `-r --alias`, `create-room --alias`, `invite`), the room's
 * state read back through the client-server API by an auditor it invited: created by the sender, unfederated,
 * invite-only, unencrypted, history `shared`, its alias published, and power levels under which no member but
 * the sender reaches the level to post a message (m.text or m.notice), redact, invite, kick, ban or change any
 * state; an auditor's attempts are refused; an auditor invited after 10 records reads all 10. Each test stands
 * alone: the room is made once, and every test invites an auditor of its own.
 */
import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAIN_JS } from "../../src/devenv/AppserviceProcess.js";
import type { MatrixHttp, RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { waitUntil } from "../../src/devenv/net.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { DATABASE, outboxDepth } from "./helpers.js";

interface Run {
    code: number | null;
    stdout: string;
    stderr: string;
}

function runMain(args: string[]): Promise<Run> {
    return new Promise((resolve) => {
        execFile(process.execPath, [MAIN_JS, ...args], (err, stdout, stderr) => {
            resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
        });
    });
}

/** What a library object dumped on the terminal looks like (e.g. `MatrixError { errcode: ... }`, `body: {`). */
const DUMPED_OBJECT = /errcode|statusCode|\{\s*$|\[Object|IncomingMessage|at .*\.js:\d+/m;

interface StateEvent extends RoomEvent {
    state_key: string;
}

interface PowerLevels {
    users?: Record<string, number>;
    users_default?: number;
    events?: Record<string, number>;
    events_default?: number;
    state_default?: number;
    redact?: number;
    invite?: number;
    kick?: number;
    ban?: number;
}

describe(`the audit room create-room makes (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;
    let created: Run;
    let roomId: string;
    let auditors = 0;

    const alias = () => `#account-data-audit:${env.synapse.serverName}`;
    const files = () => ["-c", env.configPath, "-f", env.registrationPath];

    beforeAll(async () => {
        env = await createTestEnv({
            database: DATABASE,
            // One audit event per change, so the auditor counts 10.
            appserviceConfig: { sending: { retry_initial_ms: 50, retry_max_ms: 1000, digest: { enabled: false } } },
        });
        alice = await env.newUser("alice");
        // README's order: a registration reserving the alias, the homeserver restarted to read it, then the room.
        await env.appservice.stop();
        const url = `http://127.0.0.1:${env.appservice.port}`;
        const reg = ["-r", "-u", url, "-f", env.registrationPath, "-l", "account-data-audit", "--alias", alias()];
        expect((await runMain(reg)).code).toBe(0);
        await env.restartSynapse(); // Synapse reads registrations, and the host module its token, at start
        created = await runMain(["create-room", ...files(), "--alias", alias()]);
        roomId = created.stdout.trim();
        expect(roomId).toMatch(/^!/);
        await env.writeAppserviceConfig({ ...env.appserviceConfig, audit_room: alias() });
        await env.appservice.start();
    }, 120_000);
    afterAll(async () => env?.tearDown());

    /** A new user, invited with `invite` as README says, joined: an auditor of this test's own. */
    async function newAuditor(): Promise<MatrixHttp> {
        const auditor = await env.newUser(`auditor${++auditors}`);
        const invited = await runMain(["invite", ...files(), auditor.userId]);
        expect(invited.code).toBe(0);
        expect(invited.stderr).not.toMatch(DUMPED_OBJECT);
        await auditor.join(roomId);
        return auditor;
    }

    it("create-room --alias refuses, clearly and before creating anything, an alias the registration does not reserve", async () => {
        const sender = env.auditor.http; // the auditor is a server admin: it can list the sender's rooms
        const roomsOf = async () =>
            (
                await sender.request<{ joined_rooms: string[] }>(
                    "GET",
                    `/_synapse/admin/v1/users/${encodeURIComponent(env.senderUserId)}/joined_rooms`,
                )
            ).joined_rooms.sort();
        const before = await roomsOf();
        const other = `#not-reserved:${env.synapse.serverName}`;
        const run = await runMain(["create-room", ...files(), "--alias", other]);
        expect(run.code).toBe(1);
        expect(run.stderr).toContain(`does not reserve ${other}`);
        expect(run.stderr).toContain("-r --alias");
        expect(run.stderr).not.toMatch(DUMPED_OBJECT);
        expect(run.stdout).toBe("");
        expect(await roomsOf()).toEqual(before);
    });

    it("with a registration written by -r --alias, create-room --alias creates the room quietly and says what next", async () => {
        expect(created.code).toBe(0);
        // The sender exists already (the appservice registered it): that is no error to show.
        expect(created.stderr).not.toMatch(/M_USER_IN_USE|error/i);
        expect(created.stderr).not.toMatch(DUMPED_OBJECT);
        expect(created.stderr).toContain(`invite -c ${env.configPath} -f ${env.registrationPath} @auditor:server`);
        const resolved = await env.auditor.http.request<{ room_id: string }>(
            "GET",
            `/_matrix/client/v3/directory/room/${encodeURIComponent(alias())}`,
        );
        expect(resolved.room_id).toBe(roomId);
    });

    it("read by an auditor: the sender's, unfederated, invite-only, unencrypted, shared history, its alias", async () => {
        const auditor = await newAuditor();
        const state = await auditor.request<StateEvent[]>(
            "GET",
            `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`,
        );
        const only = (type: string) => {
            const events = state.filter((e) => e.type === type && e.state_key === "");
            expect(events.length, type).toBeLessThanOrEqual(1);
            return events[0];
        };
        const create = only("m.room.create");
        expect(create?.sender).toBe(env.senderUserId);
        expect(create?.content["m.federate"]).toBe(false);
        expect(create?.content.additional_creators).toBeUndefined();
        expect(only("m.room.join_rules")?.content).toEqual({ join_rule: "invite" });
        expect(only("m.room.history_visibility")?.content).toEqual({ history_visibility: "shared" });
        expect(only("m.room.encryption")).toBeUndefined();
        expect(only("m.room.canonical_alias")?.content).toMatchObject({ alias: alias() });
        // Members: the sender and the auditors it invited, all of this server; nobody else.
        const members = state.filter((e) => e.type === "m.room.member");
        const joined = members.filter((e) => e.content.membership === "join").map((e) => e.state_key);
        expect(joined).toContain(env.senderUserId);
        expect(joined).toContain(auditor.userId);
        for (const member of members.map((e) => e.state_key).filter((u) => u !== env.senderUserId)) {
            expect(member).toMatch(new RegExp(`^@auditor\\d+:${env.synapse.serverName.replace(".", "\\.")}$`));
        }
    });

    it("read by an auditor: power levels under which only the sender may post, redact, invite, kick, ban or change the room", async () => {
        const auditor = await newAuditor();
        const state = await auditor.request<StateEvent[]>(
            "GET",
            `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`,
        );
        const create = state.find((e) => e.type === "m.room.create") as StateEvent;
        const levels = state.find((e) => e.type === "m.room.power_levels")?.content as PowerLevels;
        const version = String(create.content.room_version ?? "1");
        // Since room version 12 the creator has unlimited power and must not be listed; before, it is listed.
        const creatorsUnlimited = /^\d+$/.test(version) && Number(version) >= 12;
        const levelOf = (user: string) =>
            creatorsUnlimited && user === create.sender
                ? Infinity
                : (levels.users?.[user] ?? levels.users_default ?? 0);
        const listed = Object.keys(levels.users ?? {});
        expect(listed, "users with a level of their own").toEqual(creatorsUnlimited ? [] : [env.senderUserId]);
        expect(levels.users_default ?? 0).toBe(0);
        const needed: Record<string, number> = {
            "m.room.message (m.text, m.notice)": levels.events?.["m.room.message"] ?? levels.events_default ?? 0,
            "any other message event": levels.events_default ?? 0,
            "state (default)": levels.state_default ?? 50,
            redact: levels.redact ?? 50,
            invite: levels.invite ?? 0,
            kick: levels.kick ?? 50,
            ban: levels.ban ?? 50,
            ...Object.fromEntries(Object.entries(levels.events ?? {}).map(([type, level]) => [type, level])),
        };
        const everyone = [
            ...new Set([...state.filter((e) => e.type === "m.room.member").map((e) => e.state_key), "@anyone:x"]),
        ];
        for (const [what, level] of Object.entries(needed)) {
            expect(levelOf(env.senderUserId) >= level, `the sender reaches ${what}`).toBe(true);
            for (const user of everyone.filter((u) => u !== env.senderUserId)) {
                expect(levelOf(user) < level, `${user} must not reach ${what} (${level})`).toBe(true);
            }
        }
    });

    it("an auditor's attempts to post (m.text or m.notice), redact, change the room or invite are refused", async () => {
        const auditor = await newAuditor();
        const room = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;
        const nameEvent = (await auditor.request<StateEvent[]>("GET", `${room}/state`)).find(
            (e) => e.type === "m.room.name",
        ) as StateEvent;
        const attempts: [string, () => Promise<unknown>][] = [
            ["m.text", () => auditor.sendText(roomId, "an audit-looking line")],
            [
                "m.notice",
                () => auditor.request("PUT", `${room}/send/m.room.message/n1`, { msgtype: "m.notice", body: "x" }),
            ],
            ["redact", () => auditor.request("PUT", `${room}/redact/${encodeURIComponent(nameEvent.event_id)}/r1`, {})],
            ["topic", () => auditor.request("PUT", `${room}/state/m.room.topic/`, { topic: "mine now" })],
            ["invite", () => auditor.invite(roomId, alice.userId)],
        ];
        for (const [what, attempt] of attempts) {
            await expect(attempt(), what).rejects.toThrow(/403 M_FORBIDDEN/);
        }
    });

    it("an auditor invited after 10 records reads all 10, every one the sender's", async () => {
        for (let i = 0; i < 10; i++) await alice.setAccountData(`org.example.before_invite_${i}`, `{"i": ${i}}`);
        await waitUntil("the outbox to drain", async () => (await outboxDepth(env)) === 0, 60_000);
        const auditor = await newAuditor();
        const { chunk } = await auditor.messages(roomId);
        const records = chunk.filter((e) => e.type === "m.room.message" && RECORD_KEY in e.content);
        expect(
            records.map((e) => String(e.content.body).match(/before_invite_\d/)?.[0]).filter((m) => m !== undefined),
        ).toEqual(Array.from({ length: 10 }, (_, i) => `before_invite_${i}`));
        expect(records.every((e) => e.sender === env.senderUserId)).toBe(true);
    });

    it("/health finds nothing wrong with it", async () => {
        const health = (await (await fetch(`http://127.0.0.1:${env.appservice.port}/health`)).json()) as {
            audit_room: { problems: unknown[] };
        };
        expect(health.audit_room.problems).toEqual([]);
    });
});
