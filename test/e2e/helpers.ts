import { readFileSync } from "node:fs";
import { expect } from "vitest";
import { type MatrixHttp, MatrixHttpError, type RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { outboxDepth, type TestEnv } from "../../src/devenv/TestEnv.js";

export const DATABASE = process.env.AUDIT_E2E_DATABASE === "postgres" ? "postgres" : "sqlite";

export const COUNTER_TYPE = "org.example.counter";

/** Registers `count` users named `${prefix}0..N`. */
export async function newUsers(env: TestEnv, prefix: string, count: number): Promise<MatrixHttp[]> {
    return Promise.all(Array.from({ length: count }, (_, i) => env.newUser(`${prefix}${i}`)));
}

/**
 * Every user writes `perUser` changes `{"n": 0..perUser-1}` one after another; users run concurrently.
 * `onProgress` is told the total so far.
 */
export async function burst(users: MatrixHttp[], perUser: number, onProgress?: (done: number) => void): Promise<void> {
    let done = 0;
    await Promise.all(
        users.map(async (user) => {
            for (let n = 0; n < perUser; n++) {
                await user.setAccountData(COUNTER_TYPE, `{"n":${n}}`);
                onProgress?.(++done);
            }
        }),
    );
}

/** Reads a user's stored counter value; undefined while it cannot be read. */
export type CounterReader = (user: MatrixHttp) => Promise<{ n?: number } | undefined>;

/** Through the client-server API, as a client would (404: nothing stored yet). */
const readThroughApi: CounterReader = (user) =>
    user
        .getAccountData<{ n?: number }>(COUNTER_TYPE)
        .catch((e: unknown) => (e instanceof MatrixHttpError && e.status === 404 ? {} : undefined));

/**
 * Once the homeserver answers, from Synapse's database: what was committed. With workers, the main process answers account-data reads from a
 * cache that the writer's replication keeps fresh, so right after the writer was killed it may still show the
 * value before one that was committed, and a retry would then really write that value a second time.
 */
export function readFromDatabase(env: TestEnv): CounterReader {
    return async (user) => {
        // First wait, as a client does, until the homeserver answers again; then take the committed value.
        if ((await readThroughApi(user)) === undefined) return undefined;
        const rows = await env.synapse
            .query(
                `SELECT content FROM account_data WHERE user_id = '${user.userId}' AND account_data_type = '${COUNTER_TYPE}'`,
            )
            .catch(() => undefined);
        if (rows === undefined) return undefined;
        const content = rows[0]?.[0];
        return typeof content === "string" ? (JSON.parse(content) as { n?: number }) : {};
    };
}

/**
 * Like `burst`, but survives the homeserver going away: a PUT that fails is retried once the homeserver
 * answers again, unless reading the value back (`readBack`) shows it was stored (so each value is written
 * exactly once, as a careful client would). Gives up on a value after `giveUpMs`.
 */
export async function resilientBurst(
    users: MatrixHttp[],
    perUser: number,
    onProgress?: (done: number) => void,
    giveUpMs = 180_000,
    readBack: CounterReader = readThroughApi,
): Promise<{ retried: number }> {
    let done = 0;
    let retried = 0;
    await Promise.all(
        users.map(async (user) => {
            for (let n = 0; n < perUser; n++) {
                const deadline = Date.now() + giveUpMs;
                for (;;) {
                    try {
                        await user.setAccountData(COUNTER_TYPE, `{"n":${n}}`);
                        break;
                    } catch (err) {
                        retried++;
                        // Once the homeserver answers again, read the value back: the PUT may have been stored
                        // before the failure, and a second PUT would be a second change.
                        let stored: { n?: number } | undefined;
                        while (stored === undefined) {
                            if (Date.now() > deadline) throw err;
                            // The client's own retry delay while the homeserver restarts.
                            await new Promise((resolve) => setTimeout(resolve, 100));
                            stored = await readBack(user);
                        }
                        if (stored.n === n) break;
                    }
                }
                onProgress?.(++done);
            }
        }),
    );
    return { retried };
}

/** Resolves once `count` of the burst's PUTs are done (call `progress` from the burst's onProgress). */
export function progressGate(): { progress: (done: number) => void; reached: (count: number) => Promise<void> } {
    let current = 0;
    const waiters: { count: number; resolve: () => void }[] = [];
    return {
        progress: (done) => {
            current = done;
            for (const w of waiters.filter((w) => current >= w.count)) w.resolve();
        },
        reached: (count) =>
            current >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve })),
    };
}

const COUNTER_BODY = new RegExp(
    `^(@[^ ]+) has changed their account data for type ${COUNTER_TYPE} to: \\{"n": (\\d+)\\}$`,
);

/** Checks that the counter messages are exactly users × 0..perUser-1, each user's in order, none twice. */
export function expectAllInOrderOnce(events: RoomEvent[], users: MatrixHttp[], perUser: number): void {
    const seen = countersByUser(events);
    const expected = Array.from({ length: perUser }, (_, n) => n);
    for (const user of users) {
        expect(seen.get(user.userId), user.userId).toEqual(expected);
    }
}

/** Each user's counter values in the order the room shows them. */
export function countersByUser(events: RoomEvent[]): Map<string, number[]> {
    const seen = new Map<string, number[]>();
    // A digest's body has one line per change.
    for (const line of events.flatMap((event) => String(event.content.body).split("\n"))) {
        const match = COUNTER_BODY.exec(line);
        if (!match) continue;
        const list = seen.get(match[1] as string) ?? [];
        list.push(Number(match[2]));
        seen.set(match[1] as string, list);
    }
    return seen;
}

/** The gap notices (m.notice) among the audit messages. */
export function gapNotices(events: RoomEvent[]): RoomEvent[] {
    return events.filter((e) => e.content.msgtype === "m.notice" && String(e.content.body).startsWith("Audit gap"));
}

/**
 * What a hard crash allows: each user's values in order, and every value missing from the room named by a gap
 * notice for that user's counter (Synapse keeps only the latest value of a key). A value may appear twice in a
 * row only where Synapse really wrote it twice: up to `resent` times (see `resentWrites`). Returns how many
 * values were missing.
 */
export function expectOnceInOrderOrNoticed(
    events: RoomEvent[],
    users: MatrixHttp[],
    perUser: number,
    resent = 0,
): number {
    const seen = countersByUser(events);
    const notices = gapNotices(events).map((e) => String(e.content.body));
    let missing = 0;
    let repeats = 0;
    for (const user of users) {
        const values = seen.get(user.userId) ?? [];
        const distinct = values.filter((v, i) => i === 0 || v !== values[i - 1]);
        repeats += values.length - distinct.length;
        expect(
            distinct,
            `${user.userId}: in order, a value only repeated in a row${describeRepeats(events, user, values)}`,
        ).toEqual([...new Set(values)].sort((a, b) => a - b));
        expect(values.at(-1), `${user.userId}: the last value`).toBe(perUser - 1);
        if (distinct.length < perUser) {
            missing += perUser - distinct.length;
            const named = notices.some((n) => n.includes(`${user.userId}'s account data of type ${COUNTER_TYPE}`));
            expect(named, `${user.userId}: ${perUser - distinct.length} values missing, named by a gap notice`).toBe(
                true,
            );
        }
    }
    expect(repeats, `values in the room twice, at most the ${resent} writes Synapse resent`).toBeLessThanOrEqual(
        resent,
    );
    return missing;
}

/**
 * How many account-data writes the main process re-sent to the writer worker. When the worker dies with a write
 * in flight, Synapse's replication client takes it as a timeout and sends the same write again once a worker
 * answers; if the dead worker had committed it, the key really changed twice (two stream positions, two
 * records), which no client can prevent.
 */
export function resentWrites(env: TestEnv): number {
    return (readFileSync(env.synapse.logPath, "utf8").match(/add_user_account_data request timed out; retrying/g) ?? [])
        .length;
}

/** For a failure message: the records of the events that carry a value the room shows more than once. */
function describeRepeats(events: RoomEvent[], user: MatrixHttp, values: number[]): string {
    const repeated = values.filter((v, i) => values.indexOf(v) !== i);
    if (repeated.length === 0) return "";
    const needles = repeated.map(
        (v) => `${user.userId} has changed their account data for type ${COUNTER_TYPE} to: {"n": ${v}}`,
    );
    const copies = events.filter((e) => needles.some((n) => String(e.content.body).split("\n").includes(n)));
    return `\n(repeated ${repeated.join(", ")}; their events: ${JSON.stringify(copies.map((e) => ({ id: e.event_id, content: e.content })))})`;
}

/**
 * A burst of `users` × `perUser` with `fault` done once `faultAt` PUTs are in; then waits until every user's
 * last value is in the room and the outbox is empty, and checks what a hard crash allows (each value once, in
 * order, any missing one named by a gap notice; twice in a row only where Synapse resent the write) and that `verify` finds the trail intact. Returns how
 * many values were missing.
 */
export async function burstThroughFault(
    env: TestEnv,
    users: MatrixHttp[],
    perUser: number,
    faultAt: number,
    fault: () => Promise<void>,
): Promise<number> {
    const gate = progressGate();
    const burst = resilientBurst(users, perUser, gate.progress, undefined, readFromDatabase(env));
    await gate.reached(faultAt);
    await fault();
    await burst;
    await env.auditor.waitForRoomEvent(() => {
        const seen = countersByUser(env.auditor.received);
        return users.every((u) => seen.get(u.userId)?.at(-1) === perUser - 1);
    }, 300_000);
    await expect.poll(() => outboxDepth(env), { timeout: 60_000 }).toBe(0);
    await env.auditor.syncOnce(0);
    const resent = resentWrites(env);
    if (resent > 0) process.stderr.write(`Synapse resent ${resent} writes to the writer worker\n`);
    const missing = expectOnceInOrderOrNoticed(env.auditor.received, users, perUser, resent);
    expect((await env.verify()).report?.problems).toEqual([]);
    return missing;
}

/** On a failed test: what an admin would look at (the queue, the appservice's output, the logs). */
export function reportOnFailure(env: () => TestEnv | undefined, onTestFailed: (fn: () => Promise<void>) => void): void {
    onTestFailed(async () => {
        const current = env();
        if (!current) return;
        const depth = await outboxDepth(current).catch((err: unknown) => String(err));
        const worker = current.synapse.worker ? current.synapse.logTail(60, current.synapse.workerLogPath) : "";
        process.stderr.write(
            `\n--- diagnostics: outbox depth ${depth}, ${current.auditor.received.length} audit messages received\n` +
                `--- last messages:\n${current.auditor.bodies().slice(-10).join("\n")}\n` +
                `--- appservice output (tail):\n${current.appservice.output.slice(-3000)}\n` +
                `--- homeserver.log (tail):\n${current.synapse.logTail(60)}\n` +
                (worker ? `--- worker.log (tail):\n${worker}\n` : ""),
        );
    });
}

/** How many changes the fault-injection build of the host module holds unwritten (from its log lines). */
export function heldChanges(logPath: string): number {
    return (readFileSync(logPath, "utf8").match(/HELD change of/g) ?? []).length;
}

/** The audit message body the seed's example module posts. */
export function auditBody(user: string, type: string, json: string, room?: string): string {
    return `${user} has changed their account data for type ${type} to: ${json}` + (room ? ` (in room ${room})` : "");
}

export { outboxDepth };
