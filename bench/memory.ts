/**
 * The appservice's memory while it drains a backlog queued in the outbox: its RSS sampled over the whole
 * drain, so growth with the work done shows, not only a peak at one point.
 */
import { readFileSync } from "node:fs";
import { createTestEnv, outboxDepth, type TestEnv } from "../lib/devenv/TestEnv.js";
import { fillOutbox, peakRssKb, round2 } from "./burst.ts";
import { log } from "./stats.ts";

/** Where in the drain (fraction delivered) RSS is reported. */
const MARKS = [0.01, 0.1, 0.25, 0.5, 0.75, 1];

export interface DrainMemory {
    queued: number;
    /** Peak RSS until the first `firstChanges` changes were delivered: the same work for every backlog size. */
    firstChanges: number;
    peakRssMbFirst: number;
    /** Delivered before the phase stopped (all of them unless `maxSeconds` ran out). */
    drained: number;
    seconds: number;
    /** Peak RSS over the whole measured drain. */
    peakRssMb: number;
    /** RSS (MB) once each fraction of the backlog was delivered ("0.5": half of it), and right after startup. */
    rssMbAt: Record<string, number>;
    /** RSS at the end over RSS once the first 1% was delivered: 1 is flat. */
    endOverStart: number;
    /** The highest RSS sample over the lowest one after the first 1% was delivered. */
    maxOverMin: number;
}

function rssKb(pid: number): number {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN);
}

const mb = (kb: number): number => Math.round(kb / 102.4) / 10;

/**
 * Queues `queued` changes while the appservice is stopped, starts it and samples its RSS every 250 ms until the
 * outbox is empty (or `maxSeconds` have passed). The appservice runs with the environment's config (digest
 * mode as it ships).
 */
export async function measureDrainMemory(
    database: "sqlite" | "postgres",
    queued: number,
    firstChanges: number,
    maxSeconds: number,
    prepare?: (env: TestEnv) => Promise<void>,
): Promise<DrainMemory> {
    log(`Memory: draining ${queued} queued changes (at most ${maxSeconds} s)`);
    const env = await createTestEnv({ database, startAppservice: false });
    try {
        await prepare?.(env);
        const user = await env.newUser("mem");
        await user.setAccountData("org.bench.mem", '{"n":-1}'); // creates the outbox table
        while ((await outboxDepth(env)) !== 1) await new Promise((r) => setTimeout(r, 50));
        await fillOutbox(env, database, user.userId, queued - 1);
        const started = performance.now();
        await env.appservice.start();
        const pid = env.appservice.pid as number;
        const rssMbAt: Record<string, number> = { startup: mb(rssKb(pid)) };
        const samples: number[] = [];
        let peakFirst = 0;
        let left = queued;
        let next = 0;
        while (left > 0 && performance.now() - started < maxSeconds * 1000) {
            await new Promise((resolve) => setTimeout(resolve, 250));
            left = await outboxDepth(env);
            const rss = rssKb(pid);
            const done = (queued - left) / queued;
            // A small backlog can drain before the first sample: the high-water mark then covers exactly it.
            if (queued - left < firstChanges || peakFirst === 0) peakFirst = peakRssKb(pid);
            if (done >= (MARKS[0] as number)) samples.push(rss);
            while (next < MARKS.length && done >= (MARKS[next] as number)) rssMbAt[String(MARKS[next++])] = mb(rss);
            if (next > 0 && next < MARKS.length && samples.length % 40 === 0) {
                log(`  ${queued - left} delivered, RSS ${mb(rss)} MB`);
            }
        }
        if (queued - left < firstChanges) throw new Error(`only ${queued - left} of ${firstChanges} changes delivered`);
        const start = rssMbAt[String(MARKS[0])] ?? NaN;
        const end = mb(samples.at(-1) ?? NaN);
        log(
            `  ${queued - left} delivered in ${((performance.now() - started) / 1000).toFixed(1)} s; RSS ${JSON.stringify(rssMbAt)}`,
        );
        return {
            queued,
            firstChanges,
            peakRssMbFirst: mb(Math.max(peakFirst, 1)),
            drained: queued - left,
            seconds: round2((performance.now() - started) / 1000),
            peakRssMb: mb(peakRssKb(pid)),
            rssMbAt,
            endOverStart: round2(end / start),
            maxOverMin: round2(Math.max(...samples) / Math.min(...samples)),
        };
    } finally {
        await env.tearDown();
    }
}
