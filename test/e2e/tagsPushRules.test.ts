/**
 * Room tags (m.tag) and push rules (m.push_rules): Synapse reports neither to the account-data callback; the
 * host module polls its tables for them. Every change appears once, in order per user, within 2 s at the
 * default poll interval, and also across a SIGTERM restart and a kill -9 between the change and the poll.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";
import { auditBody, DATABASE, newUsers, reportOnFailure } from "./helpers.js";

const RECORD_KEY = "net.matrix_account_data_audit.record";
const POLLED = new Set(["m.tag", "m.push_rules"]);

function tagPath(user: MatrixHttp, room: string, tag: string): string {
    return `/_matrix/client/v3/user/${encodeURIComponent(user.userId)}/rooms/${encodeURIComponent(room)}/tags/${encodeURIComponent(tag)}`;
}

const RULE = "/_matrix/client/v3/pushrules/global/content/cake";

/** The m.tag / m.push_rules bodies the auditor has received, in order. */
function polledBodies(env: TestEnv): string[] {
    return env.auditor.received
        .filter((e) => POLLED.has(String((e.content[RECORD_KEY] as { type?: string } | undefined)?.type)))
        .map((e) => String(e.content.body));
}

function rule(change: string, rest = ""): string {
    return `{"scope": "global", "kind": "content", "rule_id": "cake", "change": "${change}"${rest}}`;
}

describe(`room tags and push rules (${DATABASE})`, () => {
    let env: TestEnv | undefined;
    afterEach(async () => {
        await env?.tearDown();
        env = undefined;
    });

    it("records tags added, changed and removed and push rules added, disabled, enabled, re-actioned and removed, once each, in order, within 2 s", async ({
        onTestFailed,
    }) => {
        env = await createTestEnv({
            database: DATABASE,
            appserviceConfig: { sending: { digest: { enabled: false } } },
        });
        reportOnFailure(() => env, onTestFailed);
        const e = env;
        await e.auditor.catchUp();
        const [alice] = await newUsers(e, "t", 1);
        if (!alice) throw new Error("user");
        const room = await alice.createRoom();
        const latencies: number[] = [];
        const expected: string[] = [];
        // One change at a time, timed from the PUT's answer to the auditor's /sync.
        const step = async (change: () => Promise<unknown>, body: string): Promise<void> => {
            await change();
            const start = Date.now();
            expected.push(body);
            await e.auditor.waitForRoomEvent((ev) => ev.content.body === body, 30_000);
            latencies.push(Date.now() - start);
        };
        const tags = (json: string): string => auditBody(alice.userId, "m.tag", json, room);
        const rules = (json: string): string => auditBody(alice.userId, "m.push_rules", json);

        await step(
            () => alice.request("PUT", tagPath(alice, room, "m.favourite"), { order: 0.25 }),
            tags('{"tags": {"m.favourite": {"order": 0.25}}}'),
        );
        await step(
            () => alice.request("PUT", tagPath(alice, room, "u.work"), {}),
            tags('{"tags": {"m.favourite": {"order": 0.25}, "u.work": {}}}'),
        );
        await step(
            () => alice.request("PUT", tagPath(alice, room, "m.favourite"), { order: 0.5 }),
            tags('{"tags": {"m.favourite": {"order": 0.5}, "u.work": {}}}'),
        );
        await step(
            () => alice.request("DELETE", tagPath(alice, room, "m.favourite")),
            tags('{"tags": {"u.work": {}}}'),
        );
        await step(() => alice.request("DELETE", tagPath(alice, room, "u.work")), tags('{"tags": {}}'));
        await step(
            () => alice.request("PUT", RULE, { pattern: "cake*", actions: ["notify"] }),
            rules(rule("added", ', "rule": {"pattern": "cake*", "actions": ["notify"]}')),
        );
        await step(
            () => alice.request("PUT", `${RULE}/enabled`, { enabled: false }),
            rules(rule("disabled", ', "rule": {"enabled": false}')),
        );
        await step(
            () => alice.request("PUT", `${RULE}/enabled`, { enabled: true }),
            rules(rule("enabled", ', "rule": {"enabled": true}')),
        );
        await step(
            () => alice.request("PUT", `${RULE}/actions`, { actions: ["dont_notify"] }),
            rules(rule("actions", ', "rule": {"actions": ["dont_notify"]}')),
        );
        await step(() => alice.request("DELETE", RULE), rules(rule("removed")));

        // A sentinel through the callback: anything polled twice would have arrived by then.
        await alice.setAccountData("org.example.sentinel", "{}");
        await e.auditor.waitForRoomEvent((ev) => String(ev.content.body).includes("org.example.sentinel"));
        expect(polledBodies(e)).toEqual(expected);
        const tagEvent = e.auditor.received.find((ev) => ev.content.body === expected[0]);
        expect(tagEvent?.content[RECORD_KEY]).toMatchObject({
            kind: "change",
            type: "m.tag",
            room_id: room,
            source: "tags",
        });
        const ruleEvent = e.auditor.received.find((ev) => ev.content.body === expected[5]);
        expect(ruleEvent?.content[RECORD_KEY]).toMatchObject({
            type: "m.push_rules",
            room_id: null,
            source: "push_rules",
        });
        const sentinel = e.auditor.received.find((ev) => String(ev.content.body).includes("org.example.sentinel"));
        expect(sentinel?.content[RECORD_KEY]).not.toHaveProperty("source");
        process.stdout.write(`[tagsPushRules] PUT → auditor's /sync (ms): ${latencies.join(", ")}\n`);
        expect(Math.max(...latencies)).toBeLessThan(2000);
    });

    it("records changes made before a SIGTERM restart and before a kill -9 (not yet polled) once each, in order", async ({
        onTestFailed,
    }) => {
        // Polled only at startup: every change below is made after the last poll and before the stop.
        env = await createTestEnv({
            database: DATABASE,
            hostModuleConfig: { poll_tags_push_rules_seconds: 3600 },
            appserviceConfig: { sending: { digest: { enabled: false } } },
        });
        reportOnFailure(() => env, onTestFailed);
        const e = env;
        await e.auditor.catchUp();
        const [alice, bob] = await newUsers(e, "r", 2);
        if (!alice || !bob) throw new Error("users");
        const room = await alice.createRoom();
        const tags = (user: MatrixHttp, json: string): string => auditBody(user.userId, "m.tag", json, room);
        const rules = (user: MatrixHttp, json: string): string => auditBody(user.userId, "m.push_rules", json);

        await alice.request("PUT", tagPath(alice, room, "u.a"), {});
        await bob.request("PUT", RULE, { pattern: "cake*", actions: ["notify"] });
        await bob.request("PUT", `${RULE}/enabled`, { enabled: false });
        await e.restartSynapse({ signal: "SIGTERM" });
        const first = [
            tags(alice, '{"tags": {"u.a": {}}}'),
            rules(bob, rule("added", ', "rule": {"pattern": "cake*", "actions": ["notify"]}')),
            rules(bob, rule("disabled", ', "rule": {"enabled": false}')),
        ];
        for (const body of first) await e.auditor.waitForRoomEvent((ev) => ev.content.body === body, 60_000);

        await alice.request("PUT", tagPath(alice, room, "u.b"), { order: 1 });
        await bob.request("PUT", `${RULE}/actions`, { actions: ["dont_notify"] });
        await bob.request("DELETE", RULE);
        await e.restartSynapse({ signal: "SIGKILL" });
        const second = [
            tags(alice, '{"tags": {"u.a": {}, "u.b": {"order": 1}}}'),
            rules(bob, rule("actions", ', "rule": {"actions": ["dont_notify"]}')),
            rules(bob, rule("removed")),
        ];
        for (const body of second) await e.auditor.waitForRoomEvent((ev) => ev.content.body === body, 60_000);

        // Once more with nothing new: what was recorded must not come back.
        await e.restartSynapse({ signal: "SIGKILL" });
        await alice.setAccountData("org.example.sentinel", "{}");
        await e.auditor.waitForRoomEvent((ev) => String(ev.content.body).includes("org.example.sentinel"), 60_000);
        const bodies = polledBodies(e);
        expect([...bodies].sort()).toEqual([...first, ...second].sort());
        for (const user of [alice, bob]) {
            const mine = (b: string): boolean => b.startsWith(`${user.userId} `);
            expect(bodies.filter(mine)).toEqual([...first, ...second].filter(mine));
        }
    });
});
