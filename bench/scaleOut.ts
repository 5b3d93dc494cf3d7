/**
 * Scale-out phases of the benchmark: digest mode (the same burst as without it, and a queued backlog drained
 * by delivery alone), Synapse with an account-data writer worker, and `verify` on a room of the burst's size.
 */
import { createTestEnv, outboxDepth, type TestEnv } from "../lib/devenv/TestEnv.js";
import { fillOutbox, measureThroughput, round2, type Throughput } from "./burst.ts";
import { log } from "./stats.ts";

/** Digest mode with its defaults (sending.digest), switched on. */
export const DIGEST = { enabled: true, min_backlog: 10, max_changes: 50, max_bytes: 16_000, lanes: 8 };

const digestConfig = { sending: { digest: DIGEST } };

export interface Drain {
    queued: number;
    seconds: number;
    perSecond: number;
}

export interface ScaleOut {
    digest: {
        /** The burst with digest mode on; its drain.seconds is how long after the last PUT the last record landed. */
        burst: Throughput;
        /** A backlog queued while the appservice was down, drained by delivery alone. */
        drain: Drain;
    };
    /** The burst on Synapse with a generic worker as the account-data stream writer, digest mode on. */
    workers: Throughput | null;
    verify: { records: number; seconds: number; intact: boolean };
}

async function withEnv<T>(opts: Parameters<typeof createTestEnv>[0], run: (env: TestEnv) => Promise<T>): Promise<T> {
    const env = await createTestEnv(opts);
    try {
        return await run(env);
    } finally {
        await env.tearDown();
    }
}

/** Times `verify` on a room (the one the burst without digests filled: one record per event). */
export async function measureVerify(env: TestEnv): Promise<ScaleOut["verify"]> {
    const started = performance.now();
    const { code, report } = await env.verify();
    const seconds = round2((performance.now() - started) / 1000);
    log(`  verify: ${String(report?.records)} records in ${seconds} s, exit code ${code}`);
    return { records: Number(report?.records), seconds, intact: code === 0 };
}

async function measureDigestDrain(database: "sqlite" | "postgres", queued: number): Promise<Drain> {
    log(`Digest mode: draining ${queued} queued changes`);
    return withEnv({ database, appserviceConfig: digestConfig }, async (env) => {
        const user = await env.newUser("queued");
        await primed(env);
        await env.appservice.stop();
        await fillOutbox(env, database, user.userId, queued);
        const started = performance.now();
        await env.appservice.start();
        while ((await outboxDepth(env)) > 0) await new Promise((r) => setTimeout(r, 100));
        const seconds = (performance.now() - started) / 1000;
        log(`  drained in ${seconds.toFixed(1)} s`);
        return { queued, seconds: round2(seconds), perSecond: Math.round(queued / seconds) };
    });
}

/** One change delivered first: the host module has heard (and stored) the appservice's digest settings. */
async function primed(env: TestEnv): Promise<TestEnv> {
    const user = await env.newUser("prime");
    await user.setAccountData("org.bench.prime", "{}");
    while ((await outboxDepth(env)) > 0) await new Promise((r) => setTimeout(r, 50));
    return env;
}

export async function measureScaleOut(
    database: "sqlite" | "postgres",
    burst: { users: number; perUser: number },
    queued: number,
): Promise<Omit<ScaleOut, "verify">> {
    const digestBurst = await withEnv({ database, appserviceConfig: digestConfig }, async (env) =>
        measureThroughput(await primed(env), burst.users, burst.perUser, "Digest mode: burst"),
    );
    const drain = await measureDigestDrain(database, queued);
    // Workers need PostgreSQL and Redis.
    const workers =
        database === "postgres"
            ? await withEnv({ workers: true, appserviceConfig: digestConfig }, async (env) =>
                  measureThroughput(await primed(env), burst.users, burst.perUser, "Workers (digest mode): burst"),
              )
            : null;
    return { digest: { burst: digestBurst, drain }, workers };
}
