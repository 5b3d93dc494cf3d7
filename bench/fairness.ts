/**
 * Fairness: one user's burst must hold nobody back. One user writes `burst` changes one after another (a
 * script); at a few points during it, each time another user makes a single change, and the phase measures
 * how long after that user's PUT returned its record is visible to the auditor through the client-server API
 * (/sync). Runs the appservice with its default config (digest mode as it ships). Some of the other users are
 * picked to share the bursting user's digest lane (CRC-32 of the user ID modulo `lanes`), the others not.
 */
import { crc32 } from "node:zlib";
import { parseConfig } from "../lib/config/Config.js";
import type { MatrixHttp, RoomEvent } from "../lib/devenv/MatrixHttp.js";
import { createTestEnv, outboxDepth, type TestEnv } from "../lib/devenv/TestEnv.js";
import { checkBurstTrail, postedChanges, round2 } from "./burst.ts";
import { log } from "./stats.ts";

/** Where in the burst (fractions of it) another user makes its one change; the middle one is the headline. */
const POINTS = [0.1, 0.3, 0.5, 0.7, 0.9];
/** Of the other users, those at these indexes share the bursting user's lane. */
const SAME_LANE = new Set([1, 3]);
const MARKER_TIMEOUT_MS = 600_000;

export interface OtherUserWait {
    /** How many of the burst's PUTs had returned when the other user's PUT was made. */
    atChange: number;
    sameLaneAsBurst: boolean;
    /** From the other user's PUT returning to its record in the auditor's /sync. */
    waitMs: number;
}

export interface Fairness {
    /** The appservice's digest settings in this run (its defaults). */
    digest: { enabled: boolean; min_backlog: number; max_changes: number; lanes: number };
    burstChanges: number;
    burstPutSeconds: number;
    /** The bursting user's last record in the room (outbox empty) after its last PUT returned. */
    lastRecordAfterLastPutSeconds: number;
    events: number;
    others: OtherUserWait[];
    /** The wait of the change made in the middle of the burst. */
    middleWaitMs: number;
    maxWaitMs: number;
}

function laneOf(userId: string, lanes: number): number {
    return crc32(Buffer.from(userId, "utf8")) % lanes;
}

/** Localparts of `count` users: those at SAME_LANE indexes in `lane`, the others in any other lane. */
function otherLocalparts(serverName: string, lanes: number, lane: number, count: number): string[] {
    const out: string[] = [];
    for (let i = 0; out.length < count; i++) {
        const localpart = `other${i}`;
        const same = laneOf(`@${localpart}:${serverName}`, lanes) === lane;
        if (same === (lanes === 1 || SAME_LANE.has(out.length))) out.push(localpart);
    }
    return out;
}

/** Resolves once the auditor has seen every marker (noting when), or rejects after `timeoutMs`. */
function watchMarkers(env: TestEnv, markers: string[], timeoutMs: number) {
    const arrived = new Map<string, number>();
    let stopped = false;
    const done = (async () => {
        const deadline = performance.now() + timeoutMs;
        while (!stopped && arrived.size < markers.length) {
            if (performance.now() > deadline) {
                throw new Error(`only ${arrived.size} of ${markers.length} other users' records arrived in time`);
            }
            const fresh: RoomEvent[] = await env.auditor.syncOnce(1000);
            const now = performance.now();
            for (const event of fresh) {
                const body = String(event.content.body);
                for (const marker of markers) {
                    if (!arrived.has(marker) && body.includes(`"${marker}"`)) arrived.set(marker, now);
                }
            }
        }
    })();
    return { arrived, done, stop: () => (stopped = true) };
}

/** When the outbox is empty: every record is in the room (rows leave it once their event was sent). */
async function drainedAt(env: TestEnv, timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while ((await outboxDepth(env)) > 0) {
        if (performance.now() > deadline) throw new Error("the burst's outbox did not drain in time");
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return performance.now();
}

/**
 * What the bursting user writes: `ordinary` small changes, or changes chosen to cost the most per record
 * (`long-type`: a 5,000-character type of control characters, each escaped six-fold in the event;
 * `dense-content`: an array of zeros just under the host module's 1 MiB max_content_bytes, the most JSON values
 * per byte the appservice reads).
 */
export type BurstShape = "ordinary" | "long-type" | "dense-content";

/** Values in a dense-content change: 2 bytes each, some 1,000,000 bytes in all. */
const DENSE_VALUES = 500_000;

function burstChange(shape: BurstShape, n: number): [type: string, content: string] {
    if (shape === "long-type") return [`org.bench.${"\u0001".repeat(5000)}`, `{"n":${n}}`];
    if (shape === "dense-content") return ["org.bench.burst", `{"n":${n},"a":[${"0,".repeat(DENSE_VALUES - 1)}0]}`];
    return ["org.bench.burst", `{"n":${n}}`];
}

export async function measureFairness(
    database: "sqlite" | "postgres",
    burst: number,
    shape: BurstShape = "ordinary",
    hostModuleConfig?: Record<string, unknown>,
): Promise<Fairness> {
    const env = await createTestEnv({ database, hostModuleConfig, keepDir: process.env.KEEP_ENV === "1" });
    try {
        const digest = parseConfig(env.appserviceConfig).config.sending.digest;
        const serverName = env.senderUserId.split(":").slice(1).join(":");
        // The host module learns the digest settings from the appservice's first answer, as on a running server.
        const prime = await env.newUser("prime");
        await prime.setAccountData("org.bench.prime", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.bench.prime"));
        const burster = await env.newUser("burster");
        const lane = laneOf(burster.userId, digest.lanes);
        const others = await Promise.all(
            otherLocalparts(serverName, digest.lanes, lane, POINTS.length).map((l) => env.newUser(l)),
        );
        const before = postedChanges(await env.auditor.allMessages());
        await env.auditor.catchUp();
        const at = POINTS.map((p) => Math.round(p * burst));
        const markers = at.map((_, i) => `fair-${i}`);
        log(
            `Fairness: one user's ${burst}-change ${shape} burst (lane ${lane} of ${digest.lanes}, digest mode ` +
                `${digest.enabled ? "on" : "off"}); another user changes one key after ${at.join(", ")}`,
        );
        const watch = watchMarkers(env, markers, MARKER_TIMEOUT_MS);
        watch.done.catch(() => undefined); // awaited below
        const acked: number[] = [];
        const otherPuts: Promise<void>[] = [];
        const started = performance.now();
        for (let n = 0; n < burst; n++) {
            await burster.setAccountData(...burstChange(shape, n));
            const i = at.indexOf(n + 1);
            if (i >= 0) {
                const other = others[i] as MatrixHttp;
                otherPuts.push(
                    other.setAccountData("org.bench.other", `{"marker":"${markers[i]}"}`).then(() => {
                        acked[i] = performance.now();
                    }),
                );
            }
        }
        const putsDone = performance.now();
        const [drained] = await Promise.all([drainedAt(env, MARKER_TIMEOUT_MS), watch.done, ...otherPuts]);
        const messages = await env.auditor.allMessages();
        // Hostile bursts' records hold other types, or content cut to fit an event.
        if (shape === "ordinary") checkBurstTrail(messages, [burster.userId], burst);
        const posted = postedChanges(messages) - before;
        if (posted !== burst + others.length) throw new Error(`expected ${burst + others.length}, found ${posted}`);
        const waits = at.map((atChange, i) => ({
            atChange,
            sameLaneAsBurst: laneOf((others[i] as MatrixHttp).userId, digest.lanes) === lane,
            waitMs: round2((watch.arrived.get(markers[i] as string) as number) - (acked[i] as number)),
        }));
        for (const w of waits) {
            log(`  after ${w.atChange}: ${w.waitMs} ms${w.sameLaneAsBurst ? " (same lane as the burst)" : ""}`);
        }
        log(
            `  PUTs done in ${((putsDone - started) / 1000).toFixed(1)} s, last record ${((drained - putsDone) / 1000).toFixed(2)} s after`,
        );
        return {
            digest: {
                enabled: digest.enabled,
                min_backlog: digest.min_backlog,
                max_changes: digest.max_changes,
                lanes: digest.lanes,
            },
            burstChanges: burst,
            burstPutSeconds: round2((putsDone - started) / 1000),
            lastRecordAfterLastPutSeconds: round2((drained - putsDone) / 1000),
            events: messages.length,
            others: waits,
            middleWaitMs: waits[Math.floor(waits.length / 2)]?.waitMs ?? NaN,
            maxWaitMs: Math.max(...waits.map((w) => w.waitMs)),
        };
    } finally {
        await env.tearDown();
    }
}
