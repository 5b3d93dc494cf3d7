/**
 * `verify` through its command line, as admins and auditors run it (README, "Verifying the trail"):
 * `node lib/main.js verify -c config.yaml -f registration.yaml` and `… --homeserver --access-token --room`
 * (the token also from MATRIX_ACCESS_TOKEN). Exit code 0 on an intact trail, 1 on a broken or stale one, 2 when
 * it could not check (arguments, config, homeserver, room: then nothing on stdout, so a cron job never reads a
 * verdict); the report's lines an auditor reads (the summary, INTACT or BROKEN with the first problem's kind,
 * seq and event, `also:` for the rest); `--from` for a trail whose first records are gone; `--json`.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import yaml from "js-yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAIN_JS } from "../../src/devenv/AppserviceProcess.js";
import type { MatrixHttp, RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { freePort } from "../../src/devenv/net.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { auditorArgs, newRoom, postAsSender, purgeBefore, recordOf, replayRoom, seqsOf } from "./forgedRooms.js";
import { DATABASE, reportOnFailure } from "./helpers.js";

interface CliRun {
    code: number | null;
    stdout: string;
    stderr: string;
    lines: string[];
}

const { MATRIX_ACCESS_TOKEN: _, ...withoutToken } = process.env;

/** `node lib/main.js verify ARGS`, as a user runs it; `env` is added to the environment. */
function verifyCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
    return new Promise((resolve) => {
        execFile(
            process.execPath,
            [MAIN_JS, "verify", ...args],
            { env: { ...withoutToken, ...env } },
            (err, stdout, stderr) => {
                const code = err ? ((err as { code?: number }).code ?? null) : 0;
                resolve({ code, stdout, stderr, lines: stdout.split("\n").filter((l) => l !== "") });
            },
        );
    });
}

const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The report's first line, for a trail of seqs first–last walked from `start`. */
function summary(roomId: string, records: number, first: number, last: number, start: string): RegExp {
    return new RegExp(
        `^Audit room ${escape(roomId)}: ${records} records, seq ${first}–${last} \\(${escape(start)}\\), ` +
            `${ISO} – ${ISO}; newest record seq ${last} at ${ISO}; 0 seqs left out by the audit policy; ` +
            `0 older messages without a hash chain \\(not checked\\)\\.$`,
    );
}

describe(`verify's command line (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;
    let trail: RoomEvent[];

    beforeAll(async () => {
        env = await createTestEnv({
            database: DATABASE,
            appserviceConfig: { sending: { retry_initial_ms: 50, retry_max_ms: 1000, digest: { enabled: false } } },
        });
        alice = await env.newUser("alice");
        for (let i = 1; i <= 4; i++) await alice.setAccountData("org.example.k", `{"i":${i}}`);
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).endsWith('{"i": 4}'));
        trail = await env.auditor.allMessages();
        expect(trail.flatMap(seqsOf)).toEqual([1, 2, 3, 4]);
    });
    afterAll(async () => env?.tearDown());

    const admin = (configPath = env.configPath) => ["-c", configPath, "-f", env.registrationPath];
    const eventOfSeq = (seq: number) => trail.find((e) => seqsOf(e).includes(seq)) as RoomEvent;

    /** A copy of the appservice's config.yaml naming another audit room (the admin form reads audit_room). */
    async function configFor(roomId: string): Promise<string> {
        const path = join(env.dir, `config-${roomId.slice(1, 9)}.yaml`);
        await writeFile(path, yaml.dump({ ...env.appserviceConfig, audit_room: roomId }));
        return path;
    }

    it("admin form: exit 0 on the intact audit room, the summary and INTACT (also with MATRIX_ACCESS_TOKEN set)", async (ctx) => {
        reportOnFailure(() => env, ctx.onTestFailed);
        const run = await verifyCli(admin());
        expect(run.code).toBe(0);
        expect(run.lines).toHaveLength(2);
        expect(run.lines[0]).toMatch(summary(env.auditRoomId, 4, 1, 4, "from the chain's first record"));
        expect(run.lines[1]).toBe("INTACT");
        expect(run.stderr).toContain(`verify: audit records of ${env.senderUserId} in ${env.auditRoomId}`);
        // An auditor's token in the admin's environment is no second form.
        const withToken = await verifyCli(admin(), { MATRIX_ACCESS_TOKEN: env.auditor.http.accessToken });
        expect(withToken).toMatchObject({ code: 0, stdout: run.stdout });
    });

    it("auditor form: exit 0 with the auditor's own token, given or from MATRIX_ACCESS_TOKEN", async () => {
        const given = await verifyCli(auditorArgs(env, env.auditRoomId));
        expect(given.code).toBe(0);
        expect(given.lines[0]).toMatch(summary(env.auditRoomId, 4, 1, 4, "from the chain's first record"));
        expect(given.lines.at(-1)).toBe("INTACT");
        // Without --sender, the first chained record's sender is taken, and named.
        expect(given.stderr).toContain(`verify: audit records of ${env.senderUserId} in ${env.auditRoomId}`);
        const fromEnv = await verifyCli(["--homeserver", env.synapse.baseUrl, "--room", env.auditRoomId], {
            MATRIX_ACCESS_TOKEN: env.auditor.http.accessToken,
        });
        expect(fromEnv).toMatchObject({ code: 0, stdout: given.stdout });
    });

    it("exit 1 on a broken trail (both forms): BROKEN names the first problem's kind, seq and event, `also:` the rest", async () => {
        // A record cut from the room, and an audit event edited by the sender.
        const cut = eventOfSeq(2);
        const { roomId, eventIds } = await replayRoom(
            env,
            trail.filter((e) => e !== cut),
        );
        const edit = await postAsSender(env, roomId, {
            msgtype: "m.text",
            body: "* edited",
            "m.new_content": { msgtype: "m.text", body: "edited" },
            "m.relates_to": { rel_type: "m.replace", event_id: eventIds[0] },
        });
        const expected = [
            expect.stringMatching(summary(roomId, 3, 1, 4, "from the chain's first record")),
            `BROKEN: missing at seq 2 (event ${eventIds[1]}): seq 2 (and any posted record after seq 1) is not in the room`,
            `  also: edited (event ${edit}): ${env.senderUserId} edited audit event ${eventIds[0]}`,
        ];
        const asAuditor = await verifyCli(auditorArgs(env, roomId));
        expect(asAuditor.code).toBe(1);
        expect(asAuditor.lines).toEqual(expected);
        const asAdmin = await verifyCli(admin(await configFor(roomId)));
        expect(asAdmin.code).toBe(1);
        expect(asAdmin.lines).toEqual(expected);
        // --json: the same problems, for machines.
        const json = await verifyCli([...auditorArgs(env, roomId), "--json"]);
        expect(json.code).toBe(1);
        expect(JSON.parse(json.stdout)).toMatchObject({
            room_id: roomId,
            sender: env.senderUserId,
            intact: false,
            problems: [
                { kind: "missing", seq: 2, eventId: eventIds[1] },
                { kind: "edited", seq: null, eventId: edit },
            ],
        });
    });

    it("exit 1 on a stale trail (--max-age): the newest record named with its seq and time", async () => {
        const newest = recordOf(eventOfSeq(4));
        // The clock, not a guess: wait until the newest record is more than a second old.
        const wait = Number(newest.ts) + 1100 - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const run = await verifyCli([...auditorArgs(env, env.auditRoomId), "--max-age", "1"]);
        expect(run.code).toBe(1);
        expect(run.lines.slice(1)).toEqual([
            `BROKEN: stale at seq 4: the newest record, seq 4 at ${new Date(Number(newest.ts)).toISOString()}, ` +
                "is older than 1 s: the trail is not being written",
        ]);
        expect((await verifyCli([...auditorArgs(env, env.auditRoomId), "--max-age", "0"])).code).toBe(0);
    });

    it("--from: a trail whose first records were purged is BROKEN without it, INTACT from its first seq on", async () => {
        const { roomId, eventIds } = await replayRoom(env, trail);
        await purgeBefore(env, roomId, eventIds[2] as string);
        const without = await verifyCli(auditorArgs(env, roomId));
        expect(without.code).toBe(1);
        expect(without.lines[0]).toMatch(summary(roomId, 2, 3, 4, "NOT from the chain's first record"));
        expect(without.lines[1]).toMatch(
            new RegExp(
                `^BROKEN: unanchored_start at seq 3 \\(event ${escape(eventIds[2] as string)}\\): the trail starts at seq 3, not at the chain's first record`,
            ),
        );
        const from3 = await verifyCli([...auditorArgs(env, roomId), "--from", "3"]);
        expect(from3.code).toBe(0);
        expect(from3.lines).toEqual([expect.stringMatching(summary(roomId, 2, 3, 4, "from --from")), "INTACT"]);
        // Checking from a later seq is also accepted; from an earlier one the start is still missing.
        const from4 = await verifyCli([...auditorArgs(env, roomId), "--from", "4"]);
        expect(from4.code).toBe(0);
        expect(from4.lines[0]).toMatch(summary(roomId, 1, 4, 4, "from --from"));
        const from2 = await verifyCli([...auditorArgs(env, roomId), "--from", "2"]);
        expect(from2.code).toBe(1);
        expect(from2.lines[1]).toMatch(/^BROKEN: unanchored_start at seq 3 /);
    });

    it("exit 2, and nothing on stdout, when it could not check: arguments", async () => {
        const cases: [string[], string][] = [
            [[], "Give -c and -f (admins), or --homeserver, --access-token and --room (auditors)"],
            [[...admin(), "--from", "x"], "Unknown argument: --from x"],
            [[...admin(), "--max-age"], "Missing a value after --max-age"],
            [["-c", env.configPath], "Both -c and -f are required"],
            [
                [...admin(), "--room", env.auditRoomId],
                "Give either -c and -f, or --homeserver, --access-token and --room, not both",
            ],
            [["--homeserver", env.synapse.baseUrl, "--room", env.auditRoomId], "Give -c and -f (admins)"],
        ];
        for (const [args, message] of cases) {
            const run = await verifyCli(args);
            expect(run, args.join(" ")).toMatchObject({ code: 2, stdout: "" });
            expect(run.stderr, args.join(" ")).toContain(message);
            expect(run.stderr, args.join(" ")).toContain("Usage: matrix-account-data-audit verify");
        }
    });

    it("exit 2, and nothing on stdout, when it could not check: config, homeserver, token, room", async () => {
        const closedPort = await freePort();
        const cases: [string[], RegExp][] = [
            [["-c", join(env.dir, "no-such-config.yaml"), "-f", env.registrationPath], /no-such-config\.yaml/],
            [
                ["--homeserver", `http://127.0.0.1:${closedPort}`, "--access-token", "x", "--room", env.auditRoomId],
                /ECONNREFUSED|fetch failed|connect/,
            ],
            [
                ["--homeserver", env.synapse.baseUrl, "--access-token", "not-a-token", "--room", env.auditRoomId],
                /M_UNKNOWN_TOKEN|401/,
            ],
            [auditorArgs(env, `#no-such-room:${env.synapse.serverName}`), /M_NOT_FOUND|404/],
            [admin(await configFor(`!nosuchroom:${env.synapse.serverName}`)), /M_FORBIDDEN|403|M_NOT_FOUND|404/],
        ];
        // A room the auditor is not in, and a room without any audit record.
        const elsewhere = await alice.createRoom({ preset: "private_chat" });
        cases.push([auditorArgs(env, elsewhere), /M_FORBIDDEN|403/]);
        const empty = await newRoom(env);
        cases.push([auditorArgs(env, empty), /No audit record with a hash chain in .*: give --sender/]);
        for (const [args, message] of cases) {
            const run = await verifyCli(args);
            expect(run, args.join(" ")).toMatchObject({ code: 2, stdout: "" });
            expect(run.stderr, args.join(" ")).toMatch(/verify: could not check the trail: /);
            expect(run.stderr, args.join(" ")).toMatch(message);
        }
    });
});
