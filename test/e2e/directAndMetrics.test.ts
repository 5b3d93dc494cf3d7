/**
 * `m.direct` rewrites (README: every account-data change "including … `m.direct` rewrites") and the host
 * module's metrics on Synapse's metrics listener (README, "Operating it": outbox depth, oldest undelivered age,
 * delivered and failed deliveries, pending writes, last delivery time).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, outboxDepth, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { auditBody, DATABASE, reportOnFailure } from "./helpers.js";

const PREFIX = "synapse_account_data_audit_";

describe(`m.direct rewrites and the host module's metrics (${DATABASE})`, () => {
    let env: TestEnv;

    beforeAll(async () => {
        env = await createTestEnv({
            database: DATABASE,
            synapseMetrics: true,
            appserviceConfig: { sending: { retry_initial_ms: 50, retry_max_ms: 1000, digest: { enabled: false } } },
        });
        await env.auditor.catchUp();
    });
    afterAll(async () => {
        await env?.tearDown();
    });

    /** The host module's unlabelled metrics, as Prometheus scrapes them from Synapse. */
    async function metrics(): Promise<Map<string, number>> {
        const text = await (await fetch(`${env.synapse.baseUrl}/_synapse/metrics`)).text();
        const values = new Map<string, number>();
        for (const line of text.split("\n")) {
            const match = /^(synapse_account_data_audit_\w+) (\S+)$/.exec(line);
            if (match) values.set(match[1] as string, Number(match[2]));
        }
        return values;
    }

    async function metric(name: string): Promise<number | undefined> {
        return (await metrics()).get(PREFIX + name);
    }

    it("a user's m.direct rewritten twice gives two records, each with the seed module's body", async ({
        onTestFailed,
    }) => {
        reportOnFailure(() => env, onTestFailed);
        const [alice, bob, carol] = await Promise.all([
            env.newUser("dm-alice"),
            env.newUser("dm-bob"),
            env.newUser("dm-carol"),
        ]);
        const withBob = await alice.createRoom({ is_direct: true, invite: [bob.userId] });
        const withBob2 = await alice.createRoom({ is_direct: true, invite: [bob.userId] });
        const withCarol = await alice.createRoom({ is_direct: true, invite: [carol.userId] });
        const first = `{"${bob.userId}":["${withBob}"]}`;
        const second = `{"${bob.userId}":["${withBob}","${withBob2}"],"${carol.userId}":["${withCarol}"]}`;
        await alice.setAccountData("m.direct", first);
        await alice.setAccountData("m.direct", second);

        // As Python's json.dumps writes them (", " and ": "), byte for byte what the example module posts.
        const expected = [
            auditBody(alice.userId, "m.direct", `{"${bob.userId}": ["${withBob}"]}`),
            auditBody(
                alice.userId,
                "m.direct",
                `{"${bob.userId}": ["${withBob}", "${withBob2}"], "${carol.userId}": ["${withCarol}"]}`,
            ),
        ];
        const mine = () =>
            env.auditor.received.filter((e) => {
                const record = e.content[RECORD_KEY] as { user_id?: string; type?: string };
                return record.user_id === alice.userId && record.type === "m.direct";
            });
        // Each user's changes are posted in order: once a later change is in, both rewrites had their turn.
        await alice.setAccountData("org.example.after_direct", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after_direct"));
        expect(mine().map((e) => e.content.body)).toEqual(expected);
        const records = mine().map((e) => e.content[RECORD_KEY] as Record<string, unknown>);
        expect(records.map((r) => [r.type, r.room_id, r.level, r.content])).toEqual([
            ["m.direct", null, "full", first],
            ["m.direct", null, "full", second],
        ]);
        expect(Number(records[1]?.seq)).toBeGreaterThan(Number(records[0]?.seq));
        expect((await env.verify()).report?.problems).toEqual([]);
    });

    it("the metrics show changes waiting while the appservice is down, and their delivery after", async ({
        onTestFailed,
    }) => {
        reportOnFailure(() => env, onTestFailed);
        const dave = await env.newUser("metrics-dave");
        // Everything before this test is delivered and counted.
        await expect.poll(() => outboxDepth(env), { timeout: 30_000 }).toBe(0);
        await expect.poll(() => metric("outbox_depth"), { timeout: 30_000 }).toBe(0);
        const before = await metrics();
        const delivered = before.get(`${PREFIX}delivered_total`) ?? NaN;
        const failures = before.get(`${PREFIX}delivery_failures_total`) ?? NaN;
        expect(delivered).toBeGreaterThanOrEqual(0);
        expect(before.get(`${PREFIX}oldest_undelivered_age_seconds`)).toBe(0);

        await env.appservice.stop();
        const stoppedAt = Date.now();
        for (let n = 0; n < 3; n++) await dave.setAccountData("org.example.metered", `{"n":${n}}`);
        // Read from the database every 5 s, and by delivery after each attempt.
        await expect.poll(() => metric("outbox_depth"), { timeout: 30_000 }).toBe(3);
        await expect.poll(() => metric("delivery_failures_total"), { timeout: 30_000 }).toBeGreaterThan(failures);
        await expect.poll(() => metric("oldest_undelivered_age_seconds"), { timeout: 30_000 }).toBeGreaterThan(0);
        const waiting = await metrics();
        expect(waiting.get(`${PREFIX}pending_writes`)).toBe(0); // written to the outbox, not held in memory
        expect(waiting.get(`${PREFIX}delivered_total`)).toBe(delivered);
        expect(waiting.get(`${PREFIX}write_failures_total`)).toBe(0);

        await env.appservice.start();
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).endsWith('org.example.metered to: {"n": 2}'));
        await expect.poll(() => metric("delivered_total"), { timeout: 30_000 }).toBe(delivered + 3);
        await expect.poll(() => metric("outbox_depth"), { timeout: 30_000 }).toBe(0);
        const after = await metrics();
        expect(after.get(`${PREFIX}oldest_undelivered_age_seconds`)).toBe(0);
        expect(after.get(`${PREFIX}last_delivery_timestamp_seconds`)).toBeGreaterThanOrEqual(stoppedAt / 1000);
        expect(after.get(`${PREFIX}recovered_total`)).toBe(0);
        expect(after.get(`${PREFIX}gap_notices_total`)).toBe(0);
    });
});
