/**
 * No input can stop the trail: every write in the hostile corpus (hostileCorpus.ts) that Synapse answers with 200
 * is followed by an ordinary change of the same user, which must reach the room within seconds; the hostile
 * change itself is in the room (recorded, or quarantined), and `verify` passes at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MatrixHttp, MatrixHttpError, type RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { DATABASE } from "./helpers.js";
import { HOSTILE_WRITES, type HostileWrite } from "./hostileCorpus.js";

/** How long the ordinary change after a hostile one may take to reach the room. */
const NEXT_CHANGE_MS = 15_000;

function recordOf(event: RoomEvent): Record<string, unknown> | null {
    const record = event.content[RECORD_KEY];
    return typeof record === "object" && record !== null ? (record as Record<string, unknown>) : null;
}

async function write(user: MatrixHttp, entry: HostileWrite): Promise<number> {
    try {
        if (entry.roomId === null) await user.setAccountData(entry.type, entry.content);
        else await user.setRoomAccountData(entry.roomId, entry.type, entry.content);
        return 200;
    } catch (err) {
        if (err instanceof MatrixHttpError) return err.status;
        throw err;
    }
}

describe(`hostile account data (${DATABASE})`, () => {
    let env: TestEnv;
    let mallory: MatrixHttp;

    beforeAll(async () => {
        env = await createTestEnv({ database: DATABASE });
        mallory = await env.newUser("mallory");
        await env.auditor.catchUp();
    });
    afterAll(async () => {
        await env?.tearDown();
    });

    it.each(HOSTILE_WRITES.map((entry, i) => [entry.name, entry, i] as const))(
        "%s: the trail goes on",
        async (_name, entry, i) => {
            expect(await write(mallory, entry)).toBe(entry.synapseStatus);
            await mallory.setAccountData("org.example.after_hostile", `{"case":${i}}`);
            const next = await env.auditor.waitForRoomEvent(
                (e) =>
                    recordOf(e)?.type === "org.example.after_hostile" &&
                    e.content.body !== undefined &&
                    String(e.content.body).endsWith(`{"case": ${i}}`),
                NEXT_CHANGE_MS,
            );
            expect(next.sender).toBe(env.senderUserId);
            if (entry.synapseStatus !== 200) return;
            // The hostile change came first, and is in the room: recorded, or quarantined with what is safe to say.
            const hostile = env.auditor.received.find((e) => {
                const record = recordOf(e);
                return (
                    record?.type === entry.type && record.room_id === entry.roomId && record.user_id === mallory.userId
                );
            });
            expect(hostile, "the hostile change's record").toBeDefined();
            const record = recordOf(hostile as RoomEvent) as Record<string, unknown>;
            expect(record.seq as number).toBeLessThan(recordOf(next)?.seq as number);
            // One change, one line: no ID or type can start a line of its own (that would forge a record).
            expect(String(hostile?.content.body).split("\n")).toHaveLength(1);
            if (record.level === "quarantined") {
                expect(hostile?.content.msgtype).toBe("m.notice");
                expect(record).toHaveProperty("quarantine.reason");
            }
        },
    );

    it("records a legacy user ID (from before Synapse's localpart rules, which it still lets write)", async () => {
        // Synapse no longer registers such IDs, but keeps serving those it has: make one as an old server would.
        const legacy = `@Legacy User <b>&amp; ☃:${env.synapse.serverName}`;
        await env.synapse.query(`INSERT INTO users (name, creation_ts) VALUES ('${legacy}', 0)`);
        const { access_token: token } = await env.auditor.http.request<{ access_token: string }>(
            "POST",
            `/_synapse/admin/v1/users/${encodeURIComponent(legacy)}/login`,
            {},
        );
        const user = new MatrixHttp(env.synapse.baseUrl, legacy, token);
        await user.setAccountData("org.example.legacy", '{"old":true}');
        const event = await env.auditor.waitForRoomEvent((e) => recordOf(e)?.user_id === legacy, NEXT_CHANGE_MS);
        expect(event.content.body).toBe(
            `${legacy} has changed their account data for type org.example.legacy to: {"old": true}`,
        );
    });

    it("leaves a trail that verifies", async () => {
        // A change of its own, so that it passes alone too (-t): an empty room has no trail to verify.
        await mallory.setAccountData("org.example.before_verify", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.before_verify"));
        const run = await env.verify();
        expect(run.report?.problems).toEqual([]);
        expect(run.code).toBe(0);
    });
});
