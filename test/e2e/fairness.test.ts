/**
 * One user's burst holds nobody back, also when it is made of the slowest records a user can write: changes of a
 * 5,000-character type of control characters (each escaped six-fold in the event, so one change fills most of
 * an event, and the audit room takes only some ten of them a second). Another user's single change made in the
 * middle of it must be in the room within seconds, whether it shares the burst's digest lane or not; the whole
 * burst is in the room afterwards, in order, and `verify` passes.
 */
import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/Config.js";
import type { MatrixHttp, RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { outboxDepth, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { DATABASE } from "./helpers.js";
import { envForEachTest } from "./setup.js";

const BURST = 800;
/** The other users' changes are made after this many of the burst's PUTs. */
const OTHERS_AT = 600;
/** How long another user's change may take to reach the room (before the fix: tens of seconds). */
const OTHER_USER_MS = 8_000;
const SLOW_TYPE = `org.example.slow.${"\u0001".repeat(5000)}`;

function laneOf(userId: string, lanes: number): number {
    return crc32(Buffer.from(userId, "utf8")) % lanes;
}

/** A user (newly registered) whose digest lane is, or is not, `lane`. */
async function userInLane(env: TestEnv, lane: number, lanes: number, same: boolean): Promise<MatrixHttp> {
    const server = env.senderUserId.split(":").slice(1).join(":");
    for (let i = 0; ; i++) {
        const localpart = `${same ? "same" : "other"}${i}`;
        if ((laneOf(`@${localpart}:${server}`, lanes) === lane) === same) return env.newUser(localpart);
    }
}

function records(event: RoomEvent): Record<string, unknown>[] {
    const record = event.content[RECORD_KEY] as Record<string, unknown> | undefined;
    if (record?.kind === "digest") return record.records as Record<string, unknown>[];
    return record ? [record] : [];
}

describe(`one user's burst of slow records (${DATABASE})`, () => {
    let env: TestEnv;
    envForEachTest({ database: DATABASE }, (created) => (env = created));

    it("holds no other user's change back, in its lane or another", { timeout: 240_000 }, async () => {
        const { lanes } = parseConfig(env.appserviceConfig).config.sending.digest;
        const mallory = await env.newUser("mallory");
        const lane = laneOf(mallory.userId, lanes);
        const others = [await userInLane(env, lane, lanes, true), await userInLane(env, lane, lanes, false)];
        const waits: Promise<number>[] = [];
        for (let n = 0; n < BURST; n++) {
            await mallory.setAccountData(SLOW_TYPE, `{"n":${n}}`);
            if (n + 1 !== OTHERS_AT) continue;
            for (const [i, other] of others.entries()) {
                await other.setAccountData("org.example.other", `{"other":${i}}`);
                const put = performance.now();
                waits.push(
                    env.auditor
                        .waitForRoomEvent((e) => String(e.content.body).endsWith(`{"other": ${i}}`), OTHER_USER_MS)
                        .then(() => performance.now() - put),
                );
            }
        }
        const [sameLane, otherLane] = await Promise.all(waits);
        expect(sameLane).toBeLessThan(OTHER_USER_MS);
        expect(otherLane).toBeLessThan(OTHER_USER_MS);

        // The burst itself: all of it, in order, once (recorded, or quarantined: too long for one event).
        await expect.poll(() => outboxDepth(env), { timeout: 180_000, interval: 500 }).toBe(0);
        const posted = (await env.auditor.allMessages())
            .flatMap(records)
            .filter((r) => r.user_id === mallory.userId && r.type === SLOW_TYPE)
            .map((r) => r.seq as number);
        expect(posted).toHaveLength(BURST);
        expect(posted).toEqual([...posted].sort((a, b) => a - b));
        expect(new Set(posted).size).toBe(BURST);
        expect((await env.verify()).code).toBe(0);
    });
});
