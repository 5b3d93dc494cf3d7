/**
 * `npm run bench:tags`: what auditing room tags and push rules costs (PostgreSQL). The host module polls
 * Synapse's tables for them (README, "Room tags and push rules").
 *
 * - latency: a tag PUT and a push-rule PUT, one at a time, each timed from the PUT's answer to its audit
 *   message in the auditor's /sync, at the default poll interval (1 s);
 * - idle CPU: Synapse's CPU time (utime + stime from /proc/<pid>/stat) over 60 s with nothing happening, with
 *   polling at the default interval and with `poll_tags_push_rules_seconds: 3600` (effectively off);
 * - the tags query: `room_tags_revisions` has no index on stream_id, so the query the poller runs when the
 *   account-data stream moved is a scan: its execution time (EXPLAIN ANALYZE) with 100,000 revisions.
 *
 * Writes bench/results/tags.json. `--quick`: 10 s idle windows, 5 changes each.
 */
import "../lib/quietDependencies.js";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { createTestEnv, type TestEnv } from "../lib/devenv/TestEnv.js";
import { PROJECT_ROOT } from "../lib/devenv/Synapse.js";
import { log, percentiles } from "./stats.ts";

const QUICK = process.argv.includes("--quick");
const IDLE_SECONDS = QUICK ? 10 : 60;
const CHANGES = QUICK ? 5 : 20;
const REVISIONS = 100_000;
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

function cpuMs(pid: number): number {
    // Fields after the command name (which is in parentheses and may hold spaces): utime is 14th, stime 15th.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

async function idleCpu(env: TestEnv): Promise<{ seconds: number; cpuMs: number; percent: number }> {
    const pid = env.synapse.pid;
    if (pid === undefined) throw new Error("no Synapse pid");
    await new Promise((r) => setTimeout(r, 5_000)); // let startup work settle
    const before = cpuMs(pid);
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const used = cpuMs(pid) - before;
    return { seconds: IDLE_SECONDS, cpuMs: used, percent: Math.round((used / (IDLE_SECONDS * 10)) * 100) / 100 };
}

async function latencies(env: TestEnv): Promise<{ tags: number[]; pushRules: number[] }> {
    const user = await env.newUser("benchtags");
    const room = await user.createRoom();
    const tagPath = (tag: string): string =>
        `/_matrix/client/v3/user/${encodeURIComponent(user.userId)}/rooms/${encodeURIComponent(room)}/tags/${tag}`;
    const timedChange = async (change: () => Promise<unknown>, type: string, marker: string): Promise<number> => {
        await change();
        const start = performance.now();
        await env.auditor.waitForRoomEvent((e) => {
            const body = String(e.content.body);
            return body.includes(`type ${type} to:`) && body.includes(marker);
        }, 30_000);
        return performance.now() - start;
    };
    const tags: number[] = [];
    const pushRules: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
        tags.push(await timedChange(() => user.request("PUT", tagPath(`u.t${i}`), {}), "m.tag", `"u.t${i}"`));
        const rule = `/_matrix/client/v3/pushrules/global/content/r${i}`;
        pushRules.push(
            await timedChange(
                () => user.request("PUT", rule, { pattern: `p${i}`, actions: ["notify"] }),
                "m.push_rules",
                `"rule_id": "r${i}"`,
            ),
        );
    }
    return { tags, pushRules };
}

async function tagsScanMs(env: TestEnv): Promise<number[]> {
    await env.synapse.query(
        "INSERT INTO room_tags_revisions (user_id, room_id, stream_id, instance_name) " +
            `SELECT '@bulk' || g || ':${env.synapse.serverName}', '!bulk' || g || ':${env.synapse.serverName}', 0, ` +
            `'master' FROM generate_series(1, ${REVISIONS}) AS g`,
    );
    await env.synapse.query("ANALYZE room_tags_revisions");
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
        const rows = await env.synapse.query(
            "EXPLAIN ANALYZE SELECT stream_id, user_id, room_id FROM room_tags_revisions " +
                "WHERE stream_id > 1000 AND stream_id <= 1100 ORDER BY stream_id ASC LIMIT 600",
        );
        const line = rows.map((r) => String(r[0])).find((l) => l.startsWith("Execution Time"));
        times.push(Number(/([\d.]+) ms/.exec(line ?? "")?.[1]));
    }
    return times;
}

async function main(): Promise<void> {
    const result: Record<string, unknown> = {
        date: new Date().toISOString(),
        machine: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`,
        database: "postgres",
        quick: QUICK,
    };
    const appserviceConfig = { sending: { digest: { enabled: false } } };
    log("polling at the default interval (1 s)");
    let env = await createTestEnv({ database: "postgres", appserviceConfig });
    try {
        await env.auditor.catchUp();
        const lat = await latencies(env);
        result.latencyMs = {
            tags: percentiles(lat.tags),
            pushRules: percentiles(lat.pushRules),
            max: Math.max(...lat.tags, ...lat.pushRules),
        };
        log(`latency: ${JSON.stringify(result.latencyMs)}`);
        result.idlePolling = await idleCpu(env);
        log(`idle, polling every 1 s: ${JSON.stringify(result.idlePolling)}`);
        const scans = await tagsScanMs(env);
        result.tagsScanMs = { revisions: REVISIONS, ...percentiles(scans) };
        log(`tags query over ${REVISIONS} revisions: ${JSON.stringify(result.tagsScanMs)}`);
    } finally {
        await env.tearDown();
    }
    log("polling every 3600 s (off)");
    env = await createTestEnv({
        database: "postgres",
        appserviceConfig,
        hostModuleConfig: { poll_tags_push_rules_seconds: 3600 },
    });
    try {
        result.idleNotPolling = await idleCpu(env);
        log(`idle, polling every 3600 s: ${JSON.stringify(result.idleNotPolling)}`);
    } finally {
        await env.tearDown();
    }
    const dir = join(PROJECT_ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, QUICK ? "tags-quick.json" : "tags.json"), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

await main();
