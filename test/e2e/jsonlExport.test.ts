/**
 * The JSONL export on a real Synapse (README, "The JSONL export"): a burst with the appservice killed mid-way
 * lands once per change, in order, across rotated files; a torn last line is cut; `verify --jsonl` passes the
 * files and names the seq of a removed or edited line; with the room refusing the sender, the file keeps up.
 */
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, outboxDepth, runVerifyCommand, type TestEnv } from "../../src/devenv/TestEnv.js";
import { EXPORT_KEY } from "../../src/export/ExportLine.js";
import { rotatedFiles } from "../../src/export/JsonlFile.js";
import { burst, COUNTER_TYPE, DATABASE, newUsers, progressGate } from "./helpers.js";

type Line = Record<string, unknown> & { [EXPORT_KEY]: Record<string, unknown> };

describe(`the JSONL export (${DATABASE})`, () => {
    let env: TestEnv;
    let path: string;
    let alice: MatrixHttp;

    beforeAll(async () => {
        path = join(mkdtempSync(join(tmpdir(), "audit-export-")), "audit.jsonl");
        env = await createTestEnv({
            database: DATABASE,
            appserviceConfig: {
                export: { jsonl: { path, rotate_bytes: 60_000 } },
                sending: { retry_initial_ms: 50, retry_max_ms: 1000, batch_deadline_ms: 2000 },
            },
        });
        alice = await env.newUser("alice");
    });
    afterAll(async () => {
        await env?.tearDown();
    });

    const files = async () => [...(await rotatedFiles(path)), path];
    const lines = async (): Promise<Line[]> =>
        (await files()).flatMap((f) =>
            readFileSync(f, "utf8")
                .split("\n")
                .filter((l) => l.length > 0)
                .map((l) => JSON.parse(l) as Line),
        );
    const records = async () => (await lines()).map((l) => l[EXPORT_KEY]);
    const verifyFiles = (given: string[]) => runVerifyCommand(["--json", "--jsonl", ...given]);

    it(
        "lands a burst once per change, in order, across rotations, with the appservice killed mid-burst",
        { timeout: 300_000 },
        async () => {
            const users = await newUsers(env, "j", 5);
            const gate = progressGate();
            const writing = burst(users, 60, gate.progress);
            await gate.reached(100);
            await env.appservice.stop("SIGKILL");
            await gate.reached(200);
            await env.appservice.start();
            await writing;
            await expect.poll(() => outboxDepth(env), { timeout: 120_000, interval: 250 }).toBe(0);

            const all = await records();
            const seqs = all.map((r) => Number(r.seq));
            expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
            expect(new Set(seqs).size).toBe(seqs.length); // never a seq twice
            for (const user of users) {
                const counters = all
                    .filter((r) => r.user_id === user.userId && r.type === COUNTER_TYPE)
                    .map((r) => (JSON.parse(String(r.content)) as { n: number }).n);
                expect(counters).toEqual(Array.from({ length: 60 }, (_, n) => n));
            }
            expect((await rotatedFiles(path)).length).toBeGreaterThan(0);
            const first = (await lines()).find((l) => l[EXPORT_KEY].type === COUNTER_TYPE) as Line;
            expect(first).toMatchObject({
                ecs: { version: "8.11.0" },
                event: { kind: "event", action: "account-data-changed" },
            });
            const run = await verifyFiles(await files());
            expect(run.report?.problems).toEqual([]);
            expect(run.code).toBe(0);
        },
    );

    it("cuts a torn last line at start and goes on", { timeout: 120_000 }, async () => {
        await env.appservice.stop("SIGKILL");
        appendFileSync(path, '{"@timestamp":"2026-11-29T00:00:00.000Z","ecs":{"vers');
        await env.appservice.start();
        await alice.setAccountData("org.example.after_torn", '{"ok":true}');
        await expect
            .poll(async () => (await records()).some((r) => r.type === "org.example.after_torn"), { timeout: 30_000 })
            .toBe(true);
        expect(readFileSync(path, "utf8")).not.toContain('"ecs":{"vers\n');
        const run = await verifyFiles(await files());
        expect(run.report?.problems).toEqual([]);
        expect(run.code).toBe(0);
    });

    it("makes verify --jsonl name the seq of a removed or an edited line", { timeout: 60_000 }, async () => {
        // Lines of its own, so that it passes alone too (-t); the files also hold the other tests'.
        for (let n = 0; n < 12; n++) await alice.setAccountData("org.example.exported", `{"n":${n}}`);
        await expect
            .poll(async () => (await records()).filter((r) => r.type === "org.example.exported").length, {
                timeout: 30_000,
            })
            .toBe(12);
        const all = await files();
        const text = all.map((f) => readFileSync(f, "utf8")).join("");
        const textLines = text.split("\n").filter((l) => l.length > 0);
        const victimAt = textLines.findIndex((l) => {
            const record = (JSON.parse(l) as Line)[EXPORT_KEY];
            return record.type === "org.example.exported" && record.content === '{"n":6}';
        });
        expect(victimAt).toBeGreaterThan(0);
        const victim = JSON.parse(textLines[victimAt] as string) as Line;
        const dir = mkdtempSync(join(tmpdir(), "audit-export-copy-"));
        const removed = join(dir, "removed.jsonl");
        writeFileSync(removed, `${textLines.filter((_, i) => i !== victimAt).join("\n")}\n`);
        const gone = await verifyFiles([removed]);
        expect(gone.code).toBe(1);
        expect((gone.report?.problems as { kind: string; seq: number }[])[0]).toMatchObject({
            kind: "missing",
            seq: victim[EXPORT_KEY].seq,
        });
        const edited = join(dir, "edited.jsonl");
        const forged = { ...victim, message: String(victim.message).replace(/"n": \d+/, '"n": 999') };
        writeFileSync(edited, `${textLines.map((l, i) => (i === victimAt ? JSON.stringify(forged) : l)).join("\n")}\n`);
        const changed = await verifyFiles([edited]);
        expect(changed.code).toBe(1);
        expect((changed.report?.problems as { seq: number }[])[0]?.seq).toBe(victim[EXPORT_KEY].seq);
        expect(changed.stdout).toContain("body_mismatch");
    });

    it(
        "keeps the file up while the room refuses the sender, and the room catches up later",
        { timeout: 180_000 },
        async () => {
            const levelsPath = `/_matrix/client/v3/rooms/${encodeURIComponent(env.auditRoomId)}/state/m.room.power_levels/`;
            const levels = await env.auditor.http.request<Record<string, unknown>>("GET", levelsPath);
            await env.auditor.http.request("PUT", levelsPath, { ...levels, events_default: 100 });
            const started = Date.now();
            for (let n = 0; n < 30; n++) await alice.setAccountData("org.example.held", `{"n":${n}}`);
            await expect
                .poll(async () => (await records()).filter((r) => r.type === "org.example.held").length, {
                    timeout: 30_000,
                    interval: 100,
                })
                .toBe(30);
            const fileMs = Date.now() - started;
            expect(await outboxDepth(env)).toBeGreaterThanOrEqual(30); // the room does not have them yet
            await env.auditor.http.request("PUT", levelsPath, levels);
            await expect.poll(() => outboxDepth(env), { timeout: 120_000, interval: 250 }).toBe(0);
            const held = (await records()).filter((r) => r.type === "org.example.held");
            expect(held.map((r) => (JSON.parse(String(r.content)) as { n: number }).n)).toEqual(
                Array.from({ length: 30 }, (_, n) => n),
            );
            const run = await verifyFiles(await files());
            expect(run.report?.problems).toEqual([]);
            const room = await env.verify();
            expect(room.report?.problems).toEqual([]);
            process.stderr.write(`jsonl export e2e: 30 changes into the file in ${fileMs} ms with the room refusing\n`);
        },
    );
});
