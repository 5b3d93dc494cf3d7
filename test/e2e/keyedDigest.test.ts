/**
 * The keyed digest end to end (README, "The audit record" and "The hash chain"): a withheld value's body shows
 * the first 16 hex digits of its record's keyed digest, which is HMAC-SHA256 under the host module's key of
 * [user, room, type, content]; one key's equal values keep their digest and different values differ; another
 * user's (or type's) equal value differs; and the key survives a Synapse restart.
 */
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { DATABASE, reportOnFailure } from "./helpers.js";

/** A secret type (withheld by default) and a type the audit policy keeps to metadata. */
const SECRET = "m.secret_storage.key.k1";
const PRIVATE = "org.example.private";
const WITHHELD =
    /^(@\S+) has changed their account data for type (\S+) to: \[content withheld: (\d+) bytes, keyed digest ([0-9a-f]{16})\]( \(in room \S+\))?$/;

interface ChangeRecord {
    seq: number;
    user_id: string;
    room_id: string | null;
    type: string;
    level: string;
    content?: string;
    content_size: number;
    content_digest: string;
    keyed_digest: string;
}

describe(`keyed digests end to end (${DATABASE})`, () => {
    let env: TestEnv;
    /** Events a test has already taken, so each change waits for its own. */
    const taken = new Set<string>();

    beforeAll(async () => {
        env = await createTestEnv({
            database: DATABASE,
            appserviceConfig: {
                sending: { retry_initial_ms: 50, retry_max_ms: 1000, digest: { enabled: false } },
                audit: { rules: [{ types: [PRIVATE], level: "metadata" }] },
            },
        });
        await env.auditor.catchUp();
    });
    afterAll(async () => {
        await env?.tearDown();
    });

    /** Sets `json` and returns its record, after checking its body against it. */
    async function change(user: MatrixHttp, type: string, json: string, roomId?: string): Promise<ChangeRecord> {
        await (roomId ? user.setRoomAccountData(roomId, type, json) : user.setAccountData(type, json));
        const event = await env.auditor.waitForRoomEvent((e) => {
            const record = e.content[RECORD_KEY] as Partial<ChangeRecord> | undefined;
            return !taken.has(e.event_id) && record?.user_id === user.userId && record.type === type;
        });
        taken.add(event.event_id);
        const record = event.content[RECORD_KEY] as ChangeRecord;
        // The body's 16 hex digits are the record's keyed digest, which the chain covers; nothing of the value.
        const body = WITHHELD.exec(String(event.content.body));
        expect(body, String(event.content.body)).not.toBeNull();
        expect(body?.[1]).toBe(user.userId);
        expect(body?.[2]).toBe(type);
        expect(Number(body?.[3])).toBe(Buffer.byteLength(json));
        expect(body?.[4]).toBe(record.keyed_digest.slice(0, 16));
        expect(record).toMatchObject({
            level: "metadata",
            content_size: Buffer.byteLength(json),
            room_id: roomId ?? null,
        });
        expect(record.keyed_digest).toMatch(/^[0-9a-f]{64}$/);
        expect(record.content_digest).toBe(`hmac-sha256:${record.keyed_digest}`);
        expect(record.content).toBeUndefined();
        expect(JSON.stringify(event.content)).not.toContain(json.slice(1, -1));
        return record;
    }

    async function digestKey(): Promise<string> {
        const rows = await env.synapse.query(
            "SELECT value FROM account_data_audit_meta WHERE name = 'content_digest_key'",
        );
        return String(rows[0]?.[0]);
    }

    it("the body's digits are the record's keyed digest: HMAC-SHA256 of [user, room, type, content] under the host module's key", async ({
        onTestFailed,
    }) => {
        reportOnFailure(() => env, onTestFailed);
        const alice = await env.newUser("kd-alice");
        const roomId = await alice.createRoom({});
        const key = Buffer.from(await digestKey(), "hex");
        expect(key).toHaveLength(32);
        const hmac = (fields: unknown[]): string =>
            createHmac("sha256", key).update(JSON.stringify(fields)).digest("hex");

        const secret = await change(alice, SECRET, '{"v":"one"}');
        expect(secret.keyed_digest).toBe(hmac([alice.userId, null, SECRET, '{"v":"one"}']));
        const inRoom = await change(alice, PRIVATE, '{"v":"one"}', roomId);
        expect(inRoom.keyed_digest).toBe(hmac([alice.userId, roomId, PRIVATE, '{"v":"one"}']));
        expect((await env.verify()).report?.problems).toEqual([]);
    });

    it("one key's equal values keep their digest, different values differ, and another user's or type's equal value differs", async ({
        onTestFailed,
    }) => {
        reportOnFailure(() => env, onTestFailed);
        const [alice, bob] = await Promise.all([env.newUser("kd-alice2"), env.newUser("kd-bob2")]);
        const one = await change(alice, SECRET, '{"v":"one"}');
        const two = await change(alice, SECRET, '{"v":"two"}');
        const oneAgain = await change(alice, SECRET, '{"v":"one"}');
        expect(oneAgain.keyed_digest).toBe(one.keyed_digest);
        expect(two.keyed_digest).not.toBe(one.keyed_digest);
        expect(oneAgain.seq).toBeGreaterThan(two.seq);

        // The same value stored by someone else, or under another type, tells nothing about alice's.
        const bobs = await change(bob, SECRET, '{"v":"one"}');
        expect(bobs.keyed_digest).not.toBe(one.keyed_digest);
        expect(bobs.keyed_digest.slice(0, 16)).not.toBe(one.keyed_digest.slice(0, 16));
        const otherType = await change(alice, PRIVATE, '{"v":"one"}');
        expect(otherType.keyed_digest).not.toBe(one.keyed_digest);
        const bobsAgain = await change(bob, SECRET, '{"v":"one"}');
        expect(bobsAgain.keyed_digest).toBe(bobs.keyed_digest);
    });

    it("the digest key survives a Synapse restart: the same value keeps its digest", async ({ onTestFailed }) => {
        reportOnFailure(() => env, onTestFailed);
        const carol = await env.newUser("kd-carol");
        const keyBefore = await digestKey();
        const before = await change(carol, SECRET, '{"v":"kept"}');
        const otherBefore = await change(carol, SECRET, '{"v":"other"}');

        await env.restartSynapse();
        expect(await digestKey()).toBe(keyBefore);
        const after = await change(carol, SECRET, '{"v":"kept"}');
        expect(after.keyed_digest).toBe(before.keyed_digest);
        const otherAfter = await change(carol, SECRET, '{"v":"other"}');
        expect(otherAfter.keyed_digest).toBe(otherBefore.keyed_digest);
    });
});
