/**
 * `verify` proves the trail complete and alive, on a real Synapse, for any auditor: a forged second copy posted
 * with the appservice's token, redacted newest records, an idle trail kept alive by checkpoints and one that
 * stopped (appservice down, a change waiting), read-only checks with an auditor's own token and an incremental
 * state file, and keyed digests that differ between users holding equal withheld values.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MatrixHttp, type RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, runVerifyCommand, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { DATABASE, reportOnFailure } from "./helpers.js";

const recordOf = (event: RoomEvent | undefined) => event?.content[RECORD_KEY] as Record<string, unknown>;

describe(`verify, complete and alive (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;
    let bob: MatrixHttp;
    let stateDir: string;

    beforeAll(async () => {
        env = await createTestEnv({
            database: DATABASE,
            hostModuleConfig: { checkpoint_interval_seconds: 2 },
            appserviceConfig: { sending: { retry_initial_ms: 50, retry_max_ms: 1000, digest: { enabled: false } } },
        });
        [alice, bob] = await Promise.all([env.newUser("alice"), env.newUser("bob")]);
        stateDir = await mkdtemp(join(tmpdir(), "verify-state-"));
        await env.auditor.catchUp();
    });
    afterAll(async () => {
        await env?.tearDown();
        await rm(stateDir, { recursive: true, force: true });
    });

    const auditorArgs = () => [
        "--homeserver",
        env.synapse.baseUrl,
        "--access-token",
        env.auditor.http.accessToken,
        "--room",
        env.auditRoomId,
    ];

    it("gives different keyed digests to equal withheld values of different users, the same to one key's repeat", async (ctx) => {
        reportOnFailure(() => env, ctx.onTestFailed);
        const secret = '{"key":"same secret parameters"}';
        await alice.setAccountData("m.secret_storage.key.abc", secret);
        await bob.setAccountData("m.secret_storage.key.abc", secret);
        await alice.setAccountData("m.secret_storage.key.abc", secret);
        const events = await env.auditor.waitForMessages(3);
        // Different users' records may be posted side by side: take each user's in seq order.
        const digestsOf = (user: MatrixHttp) =>
            events
                .filter((e) => recordOf(e).user_id === user.userId)
                .sort((a, b) => Number(recordOf(a).seq) - Number(recordOf(b).seq))
                .map((e) => recordOf(e).keyed_digest);
        const [alicesFirst, alicesSecond] = digestsOf(alice);
        const [bobs] = digestsOf(bob);
        expect(alicesFirst).toMatch(/^[0-9a-f]{64}$/);
        expect(bobs).not.toBe(alicesFirst);
        expect(alicesSecond).toBe(alicesFirst);
        for (const event of events) {
            expect(JSON.stringify(event.content)).not.toContain("same secret parameters");
            expect(recordOf(event)).not.toHaveProperty("content_salt");
        }
    });

    it("passes an idle trail kept alive by checkpoints, read-only with an auditor's token and incrementally", async () => {
        const checkpoint = await env.auditor.waitForRoomEvent((e) => recordOf(e)?.kind === "checkpoint", 15_000);
        expect(checkpoint.content.msgtype).toBe("m.notice");
        const state = join(stateDir, "state.json");
        const first = await runVerifyCommand([...auditorArgs(), "--max-age", "5", "--state", state, "--json"]);
        expect(first.report?.problems).toEqual([]);
        expect(first).toMatchObject({ code: 0, report: { start: "genesis", sender: env.senderUserId } });
        await alice.setAccountData("org.example.after_state", '{"n":1}');
        await env.auditor.waitForRoomEvent((e) => recordOf(e)?.type === "org.example.after_state");
        const second = await runVerifyCommand([...auditorArgs(), "--max-age", "5", "--state", state]);
        expect(second.code).toBe(0);
        expect(second.stdout).toMatch(/continuing the last run[\s\S]*INTACT/);
    });

    it("fails --max-age when the trail stopped: the appservice down and a change waiting", async () => {
        await env.appservice.stop();
        await alice.setAccountData("org.example.waiting", "{}");
        const deadline = Date.now() + 20_000;
        let run = await env.verify(["--max-age", "5"]);
        while (run.code === 0 && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 1000));
            run = await env.verify(["--max-age", "5"]);
        }
        expect(run.code).toBe(1);
        const problems = run.report?.problems as { kind: string; detail: string }[];
        expect(problems.map((p) => p.kind)).toEqual(["stale"]);
        expect(problems[0]?.detail).toMatch(/the newest record, seq \d+ at .*, is older than 5 s/);
        await env.appservice.start();
        await env.auditor.waitForRoomEvent((e) => recordOf(e)?.type === "org.example.waiting");
        expect((await env.verify(["--max-age", "5"])).code).toBe(0);
    });

    it("names a forged second copy posted with the appservice's token", async () => {
        await alice.setAccountData("org.example.forge_me", '{"n":1}');
        const original = await env.auditor.waitForRoomEvent((e) => recordOf(e)?.type === "org.example.forge_me");
        const forged = structuredClone(original.content);
        const record = forged[RECORD_KEY] as Record<string, unknown>;
        // Content, its plain digest and the body changed together: only the chain's commitment can tell.
        record.content = '{"n":2}';
        record.content_digest = `sha256:${createHash("sha256").update('{"n":2}').digest("hex")}`;
        forged.body = String(forged.body).replace('{"n": 1}', '{"n": 2}');
        const asSender = new MatrixHttp(
            env.synapse.baseUrl,
            env.senderUserId,
            env.registration.getAppServiceToken() as string,
        );
        await asSender.request(
            "PUT",
            `/_matrix/client/v3/rooms/${encodeURIComponent(env.auditRoomId)}/send/m.room.message/forged1` +
                `?user_id=${encodeURIComponent(env.senderUserId)}`,
            forged,
        );
        const run = await env.verify(["--max-age", "0"]);
        expect(run.code).toBe(1);
        expect(run.report?.problems).toContainEqual(
            expect.objectContaining({ kind: "content_mismatch", seq: record.seq }),
        );
    });

    it("names redacted newest records", async () => {
        await alice.setAccountData("org.example.last", '{"n":1}');
        await alice.setAccountData("org.example.last", '{"n":2}');
        const last = await env.auditor.waitForRoomEvent(
            (e) => recordOf(e)?.type === "org.example.last" && String(e.content.body).endsWith('{"n": 2}'),
        );
        for (const event of env.auditor.received.filter((e) => recordOf(e)?.type === "org.example.last")) {
            await env.auditor.http.request(
                "PUT",
                `/_matrix/client/v3/rooms/${encodeURIComponent(env.auditRoomId)}/redact/${encodeURIComponent(event.event_id)}/r${event.event_id.slice(1, 8)}`,
                {},
            );
        }
        const run = await runVerifyCommand([...auditorArgs(), "--max-age", "0", "--json"]);
        expect(run.code).toBe(1);
        const redacted = (run.report?.problems as { kind: string; eventId: string }[]).filter(
            (p) => p.kind === "redacted",
        );
        expect(redacted.map((p) => p.eventId)).toContain(last.event_id);
    });
});
