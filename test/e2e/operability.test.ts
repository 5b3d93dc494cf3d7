/**
 * Every stop is seen and delivery resumes at once (issue 24, parts 1 and 2): a wrong delivery_instance stops
 * Synapse at startup naming it; a wrong token is called a token mismatch on both sides; the oldest-undelivered
 * age grows while the appservice is down, read from the database on every instance (also the main process of
 * a workers deployment); the appservice's startup cuts the host module's backoff short.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SynapseHomeserver } from "../../src/devenv/Synapse.js";
import { createTestEnv, HOST_MODULE, outboxDepth, type TestEnv } from "../../src/devenv/TestEnv.js";
import { DATABASE } from "./helpers.js";

/**
 * The outage before the appservice comes back. The scenario is 60 s (AUDIT_OUTAGE_SECONDS=60); CI uses
 * 10 s, with a backoff whose first wait alone is 30-60 s (backoff_initial_seconds 60), so without the wake the
 * change would wait at least 20 s more after the restart.
 */
const OUTAGE_MS = Number(process.env.AUDIT_OUTAGE_SECONDS ?? 10) * 1000;
const LONG_BACKOFF = { backoff_initial_seconds: 60, backoff_max_seconds: 120 };

async function metric(env: TestEnv, name: string): Promise<number | null> {
    const text = await (await fetch(`${env.synapse.baseUrl}/_synapse/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    return line === undefined ? null : Number(line.split(" ")[1]);
}

async function hostHealth(env: TestEnv, token = env.registration.getHomeserverToken() ?? ""): Promise<Response> {
    return fetch(`${env.synapse.baseUrl}/_synapse/client/account_data_audit/v1/health`, {
        headers: { Authorization: `Bearer ${token}` },
    });
}

async function appserviceHealth(env: TestEnv): Promise<Record<string, unknown>> {
    return (await (await fetch(`http://127.0.0.1:${env.appservice.port}/health`)).json()) as Record<string, unknown>;
}

async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, ms = 60_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
        const value = await probe();
        if (value !== null && value !== undefined && value !== false) return value;
        if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
    }
}

/** Stops the appservice, writes a change, keeps it down for OUTAGE_MS (reading the age metric on the way),
 * starts it again and returns how long after it listened the change was posted (ms). */
async function outage(env: TestEnv, logPath: string): Promise<{ resumeMs: number; ages: number[] }> {
    const alice = await env.newUser(`o${Date.now() % 100000}`);
    await env.appservice.stop();
    const before = Date.now();
    await alice.setAccountData("org.example.outage", '{"n":1}');
    // The delivery loop failed once and is in its (long) backoff.
    await waitFor("a failed delivery", async () => env.synapse.logTail(400, logPath).includes("Could not deliver"));
    const ages: number[] = [];
    await waitFor("the age metric", async () => ((await metric(env, AGE)) ?? 0) > 0);
    ages.push((await metric(env, AGE)) as number);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - before))));
    ages.push((await metric(env, AGE)) as number);
    expect(await outboxDepth(env)).toBe(1);
    await env.appservice.start();
    const listening = Date.now();
    const event = await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.outage"));
    return { resumeMs: event.origin_server_ts - listening, ages };
}

const AGE = "synapse_account_data_audit_oldest_undelivered_age_seconds";

describe(`operability (${DATABASE})`, () => {
    let env: TestEnv | undefined;
    afterEach(async () => {
        await env?.tearDown();
        env = undefined;
    });

    it("a delivery_instance no instance has stops Synapse at startup, naming it and the known ones", async () => {
        env = await createTestEnv({ database: DATABASE, startAppservice: false });
        const synapse = new SynapseHomeserver({
            dir: join(env.dir, "typo-synapse"),
            modules: [
                {
                    module: HOST_MODULE,
                    config: { appservice_url: "http://127.0.0.1:9", token: "t", delivery_instance: "acc" },
                },
            ],
        });
        try {
            await synapse.writeConfig();
            const failure = await synapse.startExpectingFailure();
            expect(failure).toContain("'delivery_instance' is 'acc'");
            expect(failure).toContain("not an instance Synapse knows: master");
        } finally {
            await synapse.destroy();
        }
    });

    it("a wrong token is a token mismatch in the appservice's output, its /health and Synapse's log", async () => {
        env = await createTestEnv({ database: DATABASE, appserviceConfig: { ingest: { token: "not-the-hs-token" } } });
        const alice = await env.newUser("alice");
        await alice.setAccountData("org.example.refused", "{}");
        const current = env;
        await waitFor("the mismatch in Synapse's log", async () =>
            current.synapse.logTail(400).includes("token mismatch: this host module's token"),
        );
        expect(env.synapse.logTail(400)).toMatch(
            /403 M_UNKNOWN_TOKEN: token mismatch.*`registration_file`.*ingest\.token/,
        );
        expect(env.appservice.output).toContain(
            "token mismatch: the host module's token (registration hs_token / its `token` config) is not this " +
                "appservice's ingest.token/hs_token",
        );
        expect(await appserviceHealth(env)).toMatchObject({
            status: "degraded",
            delivery: { status: "stalled", reason: "token_mismatch" },
        });
        expect(await outboxDepth(env)).toBe(1);
        // The appservice's wake request carried its own (other) token: refused, named the same way.
        expect(env.synapse.logTail(400)).toContain("Account-data audit: token mismatch: the appservice's token");
    });

    it("the age grows while the appservice is down, and delivery resumes within 2 s of its restart", async () => {
        env = await createTestEnv({ database: DATABASE, synapseMetrics: true, hostModuleConfig: LONG_BACKOFF });
        await env.auditor.catchUp();
        const { resumeMs, ages } = await outage(env, env.synapse.logPath);
        process.stderr.write(
            `monolith: resumed ${resumeMs} ms after the appservice listened (outage ${OUTAGE_MS} ms)\n`,
        );
        expect(ages[1]).toBeGreaterThan((ages[0] as number) + OUTAGE_MS / 1000 / 2);
        expect(resumeMs).toBeLessThan(2000);
        const health = (await (await hostHealth(env)).json()) as Record<string, unknown>;
        expect(health).toMatchObject({ status: "ok", instance: "master", delivery_instance: "master" });
        expect((await hostHealth(env, "wrong")).status).toBe(403);
        await waitFor("the outbox gauge back at 0", async () => (await metric(env as TestEnv, AGE)) === 0, 15_000);
    });

    it.skipIf(DATABASE !== "postgres")(
        "workers: the main process reads the outbox from the database, warns, and passes the wake on",
        async () => {
            env = await createTestEnv({
                workers: true,
                synapseMetrics: true,
                hostModuleConfig: { ...LONG_BACKOFF, stall_warning_seconds: 2 },
            });
            await env.auditor.catchUp();
            const { resumeMs, ages } = await outage(env, env.synapse.workerLogPath);
            process.stderr.write(`workers: resumed ${resumeMs} ms after the appservice listened\n`);
            // Read on the main process, which does not deliver: from the database, not its own counter.
            expect(ages[0]).toBeGreaterThan(0);
            expect(ages[1]).toBeGreaterThan((ages[0] as number) + OUTAGE_MS / 1000 / 2);
            expect(env.synapse.logTail(400)).toMatch(
                /Account-data audit delivery has stopped: 1 changes waiting.*'acct'/,
            );
            // The wake went to the main process's client listener and reached the worker through the database.
            expect(resumeMs).toBeLessThan(2000);
            const health = (await (await hostHealth(env)).json()) as Record<string, unknown>;
            expect(health).toMatchObject({ instance: "master", delivery_instance: "acct" });
        },
    );
});
