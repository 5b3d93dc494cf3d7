/**
 * `npm run bench:export`: records per second into the JSONL export (README, "The JSONL export"), from a backlog
 * queued in the outbox while the appservice is stopped: with the room keeping up (digest mode as shipped, and one
 * event per change), and with the room refusing the sender (its events_default raised), when the host module
 * feeds the file alone (timed from the change that wakes delivery: the appservice does not start while the
 * sender may not post). Each run counts the file's lines until it holds the whole backlog. Writes
 * bench/results/export.json. `--quick` queues 2,000; `--sqlite` uses SQLite.
 */
import "../lib/quietDependencies.js";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestEnv, outboxDepth } from "../lib/devenv/TestEnv.js";
import { PROJECT_ROOT } from "../lib/devenv/Synapse.js";
import { fillOutbox, round2 } from "./burst.ts";
import { log } from "./stats.ts";

const QUICK = process.argv.includes("--quick");
const DATABASE = process.argv.includes("--sqlite") ? "sqlite" : "postgres";
const QUEUED_MANY = QUICK ? 2_000 : 20_000;
/** One event per change posts some tens a second: a smaller backlog gives its rate. */
const QUEUED_ONE_BY_ONE = 2_000;
/** The room's refusal is answered after this long (sending.batch_deadline_ms): then the file goes on alone. */
const DEADLINE_MS = 5_000;

interface Run {
    room: "up, digests" | "up, one event per change" | "refusing";
    queued: number;
    /** From the appservice's start to the file holding every record. */
    fileSeconds: number;
    fileRecordsPerSecond: number;
    /** From the start until the outbox was empty (the room took everything); null while the room refuses. */
    roomSeconds: number | null;
}

function lineCount(path: string): number {
    try {
        const text = readFileSync(path);
        let n = 0;
        for (let i = text.indexOf(10); i !== -1; i = text.indexOf(10, i + 1)) n++;
        return n;
    } catch {
        return 0;
    }
}

async function measure(room: Run["room"]): Promise<Run> {
    const QUEUED = room === "up, one event per change" ? QUEUED_ONE_BY_ONE : QUEUED_MANY;
    const path = join(mkdtempSync(join(tmpdir(), "bench-export-")), "audit.jsonl");
    const digest = room === "up, one event per change" ? { digest: { enabled: false } } : {};
    const env = await createTestEnv({
        database: DATABASE,
        startAppservice: false,
        appserviceConfig: {
            export: { jsonl: { path, rotate_bytes: 0 } },
            sending: { retry_initial_ms: 50, retry_max_ms: 1000, batch_deadline_ms: DEADLINE_MS, ...digest },
        },
    });
    try {
        const user = await env.newUser("bench");
        await user.setAccountData("org.bench.mem", '{"n":-1}'); // creates the outbox table
        while ((await outboxDepth(env)) !== 1) await new Promise((r) => setTimeout(r, 50));
        let expected = QUEUED;
        if (room === "refusing") {
            // The appservice does not start while the sender may not post: the room refuses from then on.
            await env.appservice.start();
            while ((await outboxDepth(env)) !== 0) await new Promise((r) => setTimeout(r, 50));
            const levels = `/_matrix/client/v3/rooms/${encodeURIComponent(env.auditRoomId)}/state/m.room.power_levels/`;
            const current = await env.auditor.http.request<Record<string, unknown>>("GET", levels);
            await env.auditor.http.request("PUT", levels, { ...current, events_default: 100 });
            expected = QUEUED + 1; // the first change is in the file already
        }
        await fillOutbox(env, DATABASE, user.userId, QUEUED - 1);
        const started = performance.now();
        // A change wakes delivery (the queued rows were inserted behind its back).
        if (room === "refusing") await user.setAccountData("org.bench.mem", '{"n":-2}');
        else await env.appservice.start();
        let fileSeconds: number | null = null;
        let roomSeconds: number | null = null;
        const limitMs = (room === "up, one event per change" ? 900 : 300) * 1000;
        while (performance.now() - started < limitMs) {
            await new Promise((r) => setTimeout(r, 100));
            const elapsed = (performance.now() - started) / 1000;
            if (fileSeconds === null && lineCount(path) >= expected) fileSeconds = elapsed;
            if (room !== "refusing" && roomSeconds === null && (await outboxDepth(env)) === 0) roomSeconds = elapsed;
            if (fileSeconds !== null && (room === "refusing" || roomSeconds !== null)) break;
        }
        if (fileSeconds === null) throw new Error(`the file got ${lineCount(path)} of ${expected} records`);
        if (room === "refusing" && (await outboxDepth(env)) < QUEUED) throw new Error("rows left the outbox");
        const run = {
            room,
            queued: QUEUED,
            fileSeconds: round2(fileSeconds),
            fileRecordsPerSecond: Math.round(QUEUED / fileSeconds),
            roomSeconds: roomSeconds === null ? null : round2(roomSeconds),
        };
        log(`Export, room ${room}: ${JSON.stringify(run)}`);
        return run;
    } finally {
        await env.tearDown();
    }
}

const runs: Run[] = [];
for (const room of ["up, digests", "refusing", "up, one event per change"] as const) runs.push(await measure(room));
writeFileSync(
    join(PROJECT_ROOT, "bench", "results", "export.json"),
    `${JSON.stringify({ date: new Date().toISOString(), database: DATABASE, batchDeadlineMs: DEADLINE_MS, runs }, null, 2)}\n`,
);
