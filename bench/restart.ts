/**
 * `npm run bench:restart`: what a Synapse restart costs with a large `room_account_data`, with and without the
 * host module, after a clean stop (SIGTERM) and after `kill -9`. Rows are inserted straight into PostgreSQL
 * (generate_series) below every stream position the module has yet to look at, as on a long-running server:
 * they are never recovered, but recovery's `stream_id > ?` reads (no index of Synapse's serves them) pass over
 * them. Prints a table and writes bench/results/restart.json. `--quick`: 10,000 rows, one run each.
 *
 * Figures, in ms from spawning Synapse: `health` (/health answers), `put` (a PUT of account data answered, done
 * right after health) and `audited` (that change's audit message is in the room: the module's writer was free
 * to write it, so a recovery scan holding the writer shows here). `recovery` is what the module logged.
 */
import "../lib/quietDependencies.js";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { createTestEnv, type TestEnv } from "../lib/devenv/TestEnv.js";
import { PROJECT_ROOT } from "../lib/devenv/Synapse.js";
import { log } from "./stats.ts";

const QUICK = process.argv.includes("--quick");
const ROWS = QUICK ? 10_000 : 1_000_000;
const RUNS = QUICK ? 1 : 2;
const USERS = 10_000; // rows spread over this many users (100 rooms each at 1,000,000 rows)

interface Sample {
    module: "none" | "ours";
    restart: "clean" | "kill -9";
    run: number;
    health: number;
    put: number;
    audited: number | null;
    recovery: string | null;
}

async function fillRoomAccountData(env: TestEnv): Promise<void> {
    // stream_id 0: below every position of the stream (it starts at 1), so never "missing" for recovery.
    await env.synapse.query(
        "INSERT INTO room_account_data (user_id, room_id, account_data_type, stream_id, content, instance_name) " +
            `SELECT '@bulk' || (g % ${USERS}) || ':${env.synapse.serverName}', '!bulk' || g || ':${env.synapse.serverName}', ` +
            "'m.fully_read', 0, '{\"event_id\":\"$bulk\"}', 'master' " +
            `FROM generate_series(1, ${ROWS}) AS g`,
    );
    await env.synapse.query("ANALYZE room_account_data");
}

function recoveryLine(env: TestEnv, logStart: number): string | null {
    const lines = readFileSync(env.synapse.logPath, "utf8").slice(logStart).split("\n");
    const line = lines.find((l) => l.includes("Account-data audit recovery") || l.includes("Recovered "));
    if (!line) return null;
    return line.replace(/^.*?(Account-data audit recovery|Recovered )/, "$1").slice(0, 110);
}

async function restartOnce(
    env: TestEnv,
    module: "none" | "ours",
    signal: NodeJS.Signals,
    run: number,
    user: Awaited<ReturnType<TestEnv["newUser"]>>,
): Promise<Sample> {
    const logBefore = readFileSync(env.synapse.logPath, "utf8").length;
    await env.synapse.stop(signal);
    const logStart = readFileSync(env.synapse.logPath, "utf8").length;
    const stopped = readFileSync(env.synapse.logPath, "utf8").slice(logBefore, logStart);
    const clean = stopped.split("\n").find((l) => l.includes("clean shutdown"));
    if (clean) log(`    at the stop: ${clean.replace(/^.*? - /, "").slice(0, 140)}`);
    const started = performance.now();
    await env.synapse.start();
    const health = performance.now() - started;
    const marker = `bench.restart.${module}.${signal}.${run}.${Date.now()}`;
    await user.setAccountData(marker, '{"n":1}');
    const put = performance.now() - started;
    let audited: number | null = null;
    if (module === "ours") {
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes(marker), 120_000);
        audited = performance.now() - started;
    }
    const sample: Sample = {
        module,
        restart: signal === "SIGKILL" ? "kill -9" : "clean",
        run,
        health: Math.round(health),
        put: Math.round(put),
        audited: audited === null ? null : Math.round(audited),
        recovery: module === "ours" ? recoveryLine(env, logStart) : null,
    };
    log(`  ${JSON.stringify(sample)}`);
    return sample;
}

async function measure(module: "none" | "ours"): Promise<Sample[]> {
    const env = await createTestEnv({ database: "postgres", hostModule: module });
    const samples: Sample[] = [];
    try {
        const user = await env.newUser("restartbench");
        // A clean restart with no module state to settle first, then the bulk rows.
        await env.synapse.stop();
        await env.synapse.start();
        const filling = performance.now();
        await fillRoomAccountData(env);
        log(`${module}: ${ROWS} rows inserted in ${Math.round(performance.now() - filling)} ms`);
        for (let run = 1; run <= RUNS; run++) {
            samples.push(await restartOnce(env, module, "SIGTERM", run, user));
            samples.push(await restartOnce(env, module, "SIGKILL", run, user));
        }
    } finally {
        await env.tearDown();
    }
    return samples;
}

function median(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
}

async function main(): Promise<void> {
    const began = Date.now();
    log(`Restart bench: ${ROWS} rows in room_account_data, PostgreSQL, ${RUNS} run(s) each`);
    const samples = [...(await measure("none")), ...(await measure("ours"))];
    const rows = (["none", "ours"] as const).flatMap((module) =>
        (["clean", "kill -9"] as const).map((restart) => {
            const mine = samples.filter((s) => s.module === module && s.restart === restart);
            const audited = mine.map((s) => s.audited).filter((a): a is number => a !== null);
            return {
                module,
                restart,
                health_ms: median(mine.map((s) => s.health)),
                put_ms: median(mine.map((s) => s.put)),
                audited_ms: audited.length ? median(audited) : null,
                recovery: mine.at(-1)?.recovery ?? "-",
            };
        }),
    );
    const table = ["module | restart | health ms | first PUT ms | audited ms | recovery (module's log)"];
    for (const r of rows) {
        table.push(
            `${r.module} | ${r.restart} | ${r.health_ms} | ${r.put_ms} | ${r.audited_ms ?? "-"} | ${r.recovery}`,
        );
    }
    process.stdout.write(`\n${table.join("\n")}\n`);
    const result = {
        when: new Date().toISOString(),
        quick: QUICK,
        rows_in_room_account_data: ROWS,
        users: USERS,
        runs_each: RUNS,
        cpus: cpus().length,
        took_s: Math.round((Date.now() - began) / 1000),
        medians: rows,
        samples,
    };
    const dir = join(PROJECT_ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, QUICK ? "restart-quick.json" : "restart.json"), `${JSON.stringify(result, null, 2)}\n`);
    log(`Took ${result.took_s} s`);
}

await main();
