/**
 * The auditor's record on a real Synapse: the seed's body byte for byte (checked against Python's own
 * json.dumps), structured data with the exact content text, the audit policy's levels, secrets withheld by
 * default, and HTML that shows hostile content as text.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MatrixHttp, RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { VENV } from "../../src/devenv/Synapse.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { expectSafeHtml } from "../htmlSubset.js";
import { auditBody, DATABASE } from "./helpers.js";

/** What Python makes of a JSON text: the seed's json.dumps, and Synapse's compact stored form. */
async function python(jsonText: string): Promise<{ seed: string; stored: string }> {
    const script =
        "import json, sys; v = json.loads(sys.argv[1]); " +
        "print(json.dumps({'seed': json.dumps(v), 'stored': json.dumps(v, separators=(',', ':'))}))";
    const { stdout } = await promisify(execFile)(join(VENV, "bin", "python"), ["-c", script, jsonText]);
    return JSON.parse(stdout) as { seed: string; stored: string };
}

const record = (event: RoomEvent) => event.content[RECORD_KEY] as Record<string, unknown>;

describe(`the auditor's record (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;
    let room: string;
    const policy = {
        rules: [
            { types: ["m.fully_read"], level: "none" },
            { types: ["org.example.private.*"], level: "metadata" },
        ],
    };

    beforeAll(async () => {
        env = await createTestEnv({ database: DATABASE, appserviceConfig: { audit: policy } });
        alice = await env.newUser("alice");
        room = await alice.createRoom();
        await env.auditor.catchUp();
    });
    afterAll(async () => {
        await env?.tearDown();
    });

    const next = (type: string) =>
        env.auditor.waitForRoomEvent((e) => String(e.content.body).includes(` for type ${type} to: `));

    it.each([
        ["empty", "{}"],
        ["floats", '{"one":1.0,"neg_zero":-0.0,"exp":1e100,"small":1e-05,"pi":3.141592653589793}'],
        [
            "big integers",
            '{"u64":18446744073709551615,"i64":-9223372036854775808,"huge":123456789012345678901234567890}',
        ],
        ["nesting", '{"a":[1,[2,{"b":null}]],"t":true,"f":false,"o":{"x":{"y":{}}}}'],
        ["non-ASCII", '{"name":"Zoë 😀 中文","sep":"\u2028","esc":"q\\" b\\\\ t\\t n\\n"}'],
        ["key order", '{"z":1,"a":2,"10":3,"2":4}'],
    ])("full: %s, the seed's body byte for byte and the stored JSON text exactly", async (name, json) => {
        const type = `org.example.corpus.${name.replace(/ /g, "_")}`;
        await alice.setAccountData(type, json);
        const event = await next(type);
        const expected = await python(json);
        expect(event.content.body).toBe(auditBody(alice.userId, type, expected.seed));
        expect(record(event)).toMatchObject({
            kind: "change",
            user_id: alice.userId,
            room_id: null,
            type,
            level: "full",
            recovered: false,
            content: expected.stored,
            content_size: Buffer.byteLength(expected.stored),
            content_digest: `sha256:${createHash("sha256").update(expected.stored).digest("hex")}`,
        });
        expectSafeHtml(String(event.content.formatted_body));
    });

    it("keeps 1.0 and a 64-bit integer exact in the structured data", async () => {
        await alice.setRoomAccountData(room, "org.example.exact", '{"f":1.0,"i":18446744073709551615}');
        const event = await next("org.example.exact");
        expect(record(event).content).toBe('{"f":1.0,"i":18446744073709551615}');
        expect(record(event).room_id).toBe(room);
        expect(typeof record(event).seq).toBe("number");
        expect(record(event).change_id).toMatch(/^[0-9a-f]{32}$/);
    });

    it("metadata: size and keyed digest, never the value; none: no message at all", async () => {
        await alice.setAccountData("org.example.private.flag", '{"enabled":true}');
        await alice.setReadMarker(room, await alice.sendText(room, "hello"));
        await alice.setAccountData("org.example.after_marker", "{}");
        const withheld = await next("org.example.private.flag");
        expect(withheld.content.body).toMatch(
            new RegExp(
                `^${alice.userId} has changed their account data for type org\\.example\\.private\\.flag to: ` +
                    "\\[content withheld: 16 bytes, keyed digest [0-9a-f]{16}\\]$",
            ),
        );
        expect(record(withheld)).toMatchObject({ level: "metadata", content_size: 16 });
        expect(String(record(withheld).content_digest)).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
        expect(JSON.stringify(withheld.content)).not.toContain("enabled");
        await next("org.example.after_marker");
        expect(env.auditor.bodies().filter((b) => b.includes("m.fully_read"))).toEqual([]);
    });

    it("withholds secrets by default, whatever the rules say", async () => {
        const secret =
            '{"algorithm":"m.secret_storage.v1.aes-hmac-sha2","passphrase":{"salt":"SALTY","iterations":500000}}';
        await alice.setAccountData("m.secret_storage.key.k1", secret);
        await alice.setAccountData("m.cross_signing.master", '{"encrypted":{"k":{"ciphertext":"CIPHER"}}}');
        for (const type of ["m.secret_storage.key.k1", "m.cross_signing.master"]) {
            const event = await next(type);
            expect(record(event).level).toBe("metadata");
            expect(JSON.stringify(event.content)).not.toMatch(/SALTY|CIPHER|500000/);
            expect(String(event.content.formatted_body)).toContain("it holds encrypted secrets");
        }
    });

    it("secrets: post restores the seed's message for them", async () => {
        await env.appservice.stop();
        await env.writeAppserviceConfig({ ...env.appserviceConfig, audit: { ...policy, secrets: "post" } });
        await env.appservice.start();
        await alice.setAccountData("m.megolm_backup.v1", '{"passphrase":{"salt":"S2","iterations":1.0}}');
        const event = await next("m.megolm_backup.v1");
        expect(event.content.body).toBe(
            auditBody(alice.userId, "m.megolm_backup.v1", '{"passphrase": {"salt": "S2", "iterations": 1.0}}'),
        );
        expect(record(event).level).toBe("full");
    });

    it("shows hostile content, types and room IDs as text in the HTML", async () => {
        const type = `org.example.<script>alert("t")</script>`;
        await alice.setAccountData(
            type,
            '{"x":"<a href=\\"javascript:alert(1)\\">click</a><img src=x onerror=alert(2)>"}',
        );
        const event = await next(type);
        const html = String(event.content.formatted_body);
        expectSafeHtml(html);
        expect(html).toContain("<code>org.example.&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;</code>");
        expect(html).toContain("&lt;a href=\\&quot;javascript:alert(1)\\&quot;&gt;click&lt;/a&gt;");
        expect(event.content.body).toBe(
            auditBody(
                alice.userId,
                type,
                '{"x": "<a href=\\"javascript:alert(1)\\">click</a><img src=x onerror=alert(2)>"}',
            ),
        );
    });
});
