/** The burst phase of the benchmark: many users writing at once, then the audit trail catching up. */
import { readFileSync } from "node:fs";
import type { RoomEvent } from "../lib/devenv/MatrixHttp.js";
import { outboxDepth, type TestEnv } from "../lib/devenv/TestEnv.js";
import { RECORD_KEY } from "../lib/modules/audit/Record.js";
import { log } from "./stats.ts";

export function cpuSeconds(pid: number | undefined): number {
    if (pid === undefined) return NaN;
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

export function peakRssKb(pid: number): number {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
}

export interface Throughput {
    changes: number;
    /** From the first PUT until the outbox is empty (every audit event is in the room). */
    seconds: number;
    perSecond: number;
    /** The PUTs alone: until the last one returned (Synapse is busy with them, and delivers little). */
    puts: { seconds: number; synapseCpuSeconds: number };
    /** Delivery alone: changes left when the last PUT returned, over the time they took to empty. */
    drain: { changes: number; seconds: number; perSecond: number; synapseCpuMsPerChange: number };
    /** The audit room's forward extremities once all is posted (concurrent sends fork the event graph). */
    forwardExtremitiesAfter: number;
    /** Audit events in the room (fewer than changes with digests). */
    events: number;
}

/** Changes recorded in audit messages: a digest holds several. */
export function postedChanges(events: RoomEvent[]): number {
    return events.reduce((sum, event) => {
        const record = event.content[RECORD_KEY] as { kind?: string; records?: unknown[] } | undefined;
        return sum + (record?.kind === "digest" ? (record.records?.length ?? 0) : 1);
    }, 0);
}

interface BurstRecord {
    user_id?: string;
    type?: string;
    content?: string;
}

/** The records of audit messages in room order, a digest's in its own order. */
function recordsOf(events: RoomEvent[]): BurstRecord[] {
    return events.flatMap((event) => {
        const record = event.content[RECORD_KEY] as
            (BurstRecord & { kind?: string; records?: BurstRecord[] }) | undefined;
        if (record === undefined) return [];
        return record.kind === "digest" ? (record.records ?? []) : [record];
    });
}

/**
 * The figures only count if the trail is right: every burst change of every user in the room exactly once,
 * each user's in the order written (`{"n":0}`, `{"n":1}`, …).
 */
export function checkBurstTrail(events: RoomEvent[], userIds: string[], perUser: number): void {
    const next = new Map(userIds.map((id) => [id, 0]));
    for (const record of recordsOf(events)) {
        if (record.type !== "org.bench.burst" || record.user_id === undefined) continue;
        const expected = next.get(record.user_id);
        if (expected === undefined) continue; // another phase's user
        const n = (JSON.parse(record.content ?? "{}") as { n?: number }).n;
        if (n !== expected) throw new Error(`${record.user_id}: expected change ${expected}, found ${String(n)}`);
        next.set(record.user_id, expected + 1);
    }
    for (const [userId, count] of next) {
        if (count !== perUser) throw new Error(`${userId}: ${count} of ${perUser} changes in the room`);
    }
}

export async function forwardExtremities(env: TestEnv, roomId = env.auditRoomId): Promise<number> {
    const rows = await env.synapse.query(`SELECT COUNT(*) FROM event_forward_extremities WHERE room_id = '${roomId}'`);
    return Number(rows[0]?.[0]);
}

/**
 * The burst: `users` users write `perUser` changes each, as fast as the homeserver takes them; then the time
 * until the outbox is empty. A change leaves the outbox only once the appservice acknowledged it, which it does
 * after the homeserver returned the event's ID, so an empty outbox means every audit record is in the room;
 * polling it (one COUNT) keeps the measurement from loading the homeserver the way a /sync reader would. The
 * room is read back afterwards and checked (`checkBurstTrail`). Counts changes, not events (a digest holds
 * several).
 */
export async function measureThroughput(
    env: TestEnv,
    usersCount: number,
    perUser: number,
    label = "Throughput",
): Promise<Throughput> {
    const users = await Promise.all(Array.from({ length: usersCount }, (_, i) => env.newUser(`b${i}`)));
    const before = postedChanges(await env.auditor.allMessages());
    const total = usersCount * perUser;
    log(`${label}: ${total} changes by ${usersCount} users`);
    const cpuStart = cpuSeconds(env.synapse.pid);
    const started = performance.now();
    await Promise.all(
        users.map(async (user) => {
            for (let n = 0; n < perUser; n++) await user.setAccountData("org.bench.burst", `{"n":${n}}`);
        }),
    );
    const putsDone = performance.now();
    const cpuPutsDone = cpuSeconds(env.synapse.pid);
    const leftAfterPuts = await outboxDepth(env);
    let lastLog = performance.now();
    let depth: number;
    while ((depth = await outboxDepth(env)) > 0) {
        if (performance.now() - lastLog > 30_000) {
            lastLog = performance.now();
            log(`  ${depth} left; the homeserver's pushes to the appservice lag ${await appserviceLag(env)} events`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const done = performance.now();
    const cpuDone = cpuSeconds(env.synapse.pid);
    const messages = await env.auditor.allMessages();
    const posted = postedChanges(messages) - before;
    if (posted !== total) throw new Error(`expected ${total} audited changes, found ${posted}`);
    checkBurstTrail(
        messages,
        users.map((user) => user.userId),
        perUser,
    );
    const seconds = (done - started) / 1000;
    const drainSeconds = (done - putsDone) / 1000;
    log(
        `  PUTs done in ${((putsDone - started) / 1000).toFixed(1)} s, ${leftAfterPuts} left, all posted after ${seconds.toFixed(1)} s`,
    );
    return {
        changes: total,
        seconds: round2(seconds),
        perSecond: Math.round(total / seconds),
        puts: { seconds: round2((putsDone - started) / 1000), synapseCpuSeconds: round2(cpuPutsDone - cpuStart) },
        drain: {
            changes: leftAfterPuts,
            seconds: round2(drainSeconds),
            perSecond: Math.round(leftAfterPuts / drainSeconds),
            synapseCpuMsPerChange: round2(((cpuDone - cpuPutsDone) * 1000) / Math.max(1, leftAfterPuts)),
        },
        forwardExtremitiesAfter: await forwardExtremities(env),
        events: messages.length,
    };
}

/** How many events the homeserver has yet to push to the appservice (its /transactions stream). */
async function appserviceLag(env: TestEnv): Promise<number> {
    const rows = await env.synapse.query(
        "SELECT (SELECT MAX(stream_ordering) FROM events) - (SELECT stream_ordering FROM appservice_stream_position)",
    );
    return Number(rows[0]?.[0]);
}

export function round2(x: number): number {
    return Math.round(x * 100) / 100;
}

/**
 * Fills the outbox directly with `count` changes of `userId`: what the callback writes, without the PUTs of
 * setup (they carry no hash chain, which delivery does not need). The outbox table must exist.
 */
export async function fillOutbox(env: TestEnv, database: string, userId: string, count: number): Promise<void> {
    await env.synapse.query(
        database === "postgres"
            ? `INSERT INTO account_data_audit_outbox (change_id, user_id, room_id, account_data_type, content, created_ts)
               SELECT md5(g::text), '${userId}', NULL, 'org.bench.mem', '{"n":' || g || ',"pad":"' || repeat('x', 64) || '"}', 0
               FROM generate_series(1, ${count}) g`
            : `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ${count})
               INSERT INTO account_data_audit_outbox (change_id, user_id, room_id, account_data_type, content, created_ts)
               SELECT lower(hex(randomblob(16))), '${userId}', NULL, 'org.bench.mem', '{"n":' || n || ',"pad":"' || printf('%.64c', 'x') || '"}', 0 FROM g`,
    );
}
