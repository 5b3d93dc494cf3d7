import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AuditModule, auditMessageBody } from "../../src/modules/AuditModule.js";
import type { AuditPolicyConfig } from "../../src/modules/audit/Policy.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { EventTooLargeError } from "../../src/matrix/SendErrors.js";
import { transactionId } from "../../src/modules/ModuleHost.js";
import { expectSafeHtml } from "../htmlSubset.js";
import { change, keyedDigest, setup } from "./moduleFakes.js";

const ALICE = "@alice:example.org";
const ROOM = "!room:example.org";

function moduleWith(audit: Partial<AuditPolicyConfig> = {}) {
    const { host, sender } = setup();
    const levels: string[] = [];
    new AuditModule(
        {
            audit_room: "!audit:example.org",
            sender: "@audit:example.org",
            audit: { rules: [], secrets: "withhold", ...audit },
        },
        host.api,
        { onRecorded: (level) => levels.push(level) },
    );
    return { host, sender, levels };
}

const rule = (types: string[], level: "none" | "metadata" | "full", more: object = {}) => ({
    types,
    users: null,
    rooms: null,
    level,
    ...more,
});

describe("AuditModule at level full", () => {
    it("posts the seed's body, an HTML rendering and the structured record with the exact content text", async () => {
        const { host, sender, levels } = moduleWith();
        const json = '{"a":1.0,"big":18446744073709551615,"s":"caf\\u00e9"}';
        await host.dispatch(change("c1", json, ROOM, { seq: 7, ts: 1234 }));
        const content = sender.sent[0]?.content as Record<string, unknown>;
        expect(content.msgtype).toBe("m.text");
        expect(content.body).toBe(
            `${ALICE} has changed their account data for type m.test to: ` +
                `{"a": 1.0, "big": 18446744073709551615, "s": "caf\\u00e9"} (in room ${ROOM})`,
        );
        expect(content.format).toBe("org.matrix.custom.html");
        expect(content.formatted_body).toBe(
            `<p><a href="https://matrix.to/#/%40alice%3Aexample.org">${ALICE}</a> changed their account data ` +
                `<code>m.test</code> in room <a href="https://matrix.to/#/!room%3Aexample.org">${ROOM}</a>:</p>` +
                '<pre><code class="language-json">{\n  &quot;a&quot;: 1.0,\n  &quot;big&quot;: 18446744073709551615,' +
                "\n  &quot;s&quot;: &quot;café&quot;\n}</code></pre>",
        );
        expect(content[RECORD_KEY]).toEqual({
            version: 1,
            kind: "change",
            seq: 7,
            change_id: "c1",
            ts: 1234,
            user_id: ALICE,
            room_id: ROOM,
            type: "m.test",
            level: "full",
            recovered: false,
            content_size: json.length,
            content_digest: `sha256:${createHash("sha256").update(json).digest("hex")}`,
            content: json,
            keyed_digest: keyedDigest(json),
        });
        expect(levels).toEqual(["full"]);
    });

    it("folds long content in <details>", async () => {
        const { host, sender } = moduleWith();
        await host.dispatch(change("c1", JSON.stringify({ list: Array.from({ length: 30 }, (_, i) => i) })));
        expect(String(sender.sent[0]?.content.formatted_body)).toMatch(
            /<details><summary>Content \(\d+ bytes\)<\/summary><pre><code class="language-json">\{/,
        );
    });

    it("escapes every value from a user, so hostile HTML shows as text", async () => {
        const { host, sender } = moduleWith();
        const hostile = '{"x":"<script>alert(1)</script><a href=\\"javascript:alert(2)\\">y</a>"}';
        await host.dispatch(
            change("c1", hostile, "!r<b>:example.org", {
                userId: "@<i>x</i>:example.org",
                type: 'a<img src=x onerror="1">',
            }),
        );
        const html = String(sender.sent[0]?.content.formatted_body);
        expectSafeHtml(html);
        expect(html).not.toMatch(/<(script|img|i|b)[\s>]/);
        expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
        expect(html).toContain("<code>a&lt;img src=x onerror=&quot;1&quot;&gt;</code>");
        expect(html).toContain(
            'href="https://matrix.to/#/%40%3Ci%3Ex%3C%2Fi%3E%3Aexample.org">@&lt;i&gt;x&lt;/i&gt;:example.org</a>',
        );
    });

    it("leaves out the HTML's copy, then the record's, then cuts the body, saying so", async () => {
        const { host, sender } = moduleWith();
        const content = JSON.stringify({ blob: "é".repeat(30_000) }); // 6 bytes each once escaped as \u00e9
        await host.dispatch(change("big", content));
        const sent = sender.sent[0]?.content as Record<string, unknown>;
        const body = String(sent.body);
        expect(body.startsWith(`${ALICE} has changed their account data for type m.test to: {"blob": "\\u00e9`)).toBe(
            true,
        );
        expect(body).toMatch(/… \[content cut to fit in one event: showing \d+ of 180012 characters\]$/);
        expect(body).not.toMatch(/\\u[0-9a-f]{0,3}…/); // never half an escape before the cut mark
        expect(String(sent.formatted_body)).toContain("too long to show here as well");
        expect(sent[RECORD_KEY]).toMatchObject({
            content_omitted: "too_large",
            content_size: Buffer.byteLength(content),
        });
        expect(Buffer.byteLength(JSON.stringify(sent))).toBeLessThanOrEqual(60_000);
        expect(sender.sent[0]?.txnId).toBe(transactionId("big", 0, "audit"));
    });

    it("keeps the full body when only the HTML copy does not fit", async () => {
        const { host, sender } = moduleWith();
        const content = JSON.stringify({ blob: "<".repeat(12_000) }); // &lt; makes the HTML copy 4× as long
        await host.dispatch(change("mid", content));
        const sent = sender.sent[0]?.content as Record<string, unknown>;
        expect(sent.body).toBe(auditMessageBody(ALICE, null, "m.test", `{"blob": "${"<".repeat(12_000)}"}`));
        expect(sent[RECORD_KEY]).toMatchObject({ content });
    });

    it("cuts harder when the homeserver still says M_TOO_LARGE, a bounded number of times", async () => {
        const { host, sender } = moduleWith();
        sender.tooLargeAbove = 20_000;
        await host.dispatch(change("big", JSON.stringify({ blob: "x".repeat(100_000) })));
        expect(Buffer.byteLength(JSON.stringify(sender.sent[0]?.content))).toBeLessThanOrEqual(20_000);

        // The message never fits: cut a bounded number of times, then post the record quarantined.
        sender.tooLargeAbove = Infinity;
        sender.refuse = (req) => (req.content.msgtype === "m.text" ? new EventTooLargeError("too large") : null);
        const refusedBefore = sender.refused.length;
        await host.dispatch(change("big2", JSON.stringify({ blob: "x".repeat(100_000) }), null, { seq: 7 }));
        expect(sender.refused.length - refusedBefore).toBeLessThanOrEqual(8);
        const notice = sender.sent.at(-1);
        expect(notice?.content.msgtype).toBe("m.notice");
        expect(notice?.txnId).toBe("audit.big2.0.quarantine");
        expect(notice?.content[RECORD_KEY]).toMatchObject({
            seq: 7,
            level: "quarantined",
            content_size: 100_011,
            quarantine: { reason: expect.stringContaining("EventTooLargeError") },
        });
        expect(JSON.stringify(notice?.content)).not.toContain("xxxx");
    });
});

describe("the audit policy", () => {
    it("metadata: the same sentence, the content replaced by its size and keyed digest", async () => {
        const { host, sender } = moduleWith({ rules: [rule(["org.example.*"], "metadata")] });
        const json = '{"enabled":true}';
        await host.dispatch(change("c1", json, null, { type: "org.example.flag" }));
        const content = sender.sent[0]?.content as Record<string, unknown>;
        const keyed = keyedDigest(json);
        expect(content.body).toBe(
            `${ALICE} has changed their account data for type org.example.flag to: ` +
                `[content withheld: 16 bytes, keyed digest ${keyed.slice(0, 16)}]`,
        );
        expect(String(content.formatted_body)).toContain("the audit policy records metadata only");
        expect(content[RECORD_KEY]).toMatchObject({
            level: "metadata",
            content_size: 16,
            content_digest: `hmac-sha256:${keyed}`,
        });
        expect(content[RECORD_KEY]).not.toHaveProperty("content");
        expect(JSON.stringify(content)).not.toContain("enabled");
    });

    it("none: nothing posted, the change still counted", async () => {
        const { host, sender, levels } = moduleWith({ rules: [rule(["m.fully_read"], "none")] });
        await host.dispatch(change("c1", '{"event_id":"$e"}', ROOM, { type: "m.fully_read" }));
        expect(sender.sent).toEqual([]);
        expect(levels).toEqual(["none"]);
    });

    it("the first matching rule decides; users and rooms narrow a rule; 'global' means global data", async () => {
        const { host, sender, levels } = moduleWith({
            rules: [
                rule(["m.fully_read"], "none", { users: ["@bot-*:example.org"] }),
                rule(["m.fully_read"], "metadata", { rooms: ["!quiet*"] }),
                rule(["im.*"], "none", { rooms: ["global"] }),
                rule(["*"], "full"),
            ],
        });
        await host.dispatch(change("1", "{}", ROOM, { type: "m.fully_read", userId: "@bot-1:example.org" }));
        await host.dispatch(change("2", "{}", "!quiet:example.org", { type: "m.fully_read" }));
        await host.dispatch(change("3", "{}", ROOM, { type: "m.fully_read" }));
        await host.dispatch(change("4", "{}", null, { type: "im.vector.setting" }));
        await host.dispatch(change("5", "{}", ROOM, { type: "im.vector.setting" }));
        expect(levels).toEqual(["none", "metadata", "full", "none", "full"]);
        expect(sender.sent).toHaveLength(3);
    });

    it.each([
        "m.secret_storage.key.abc",
        "m.secret_storage.default_key",
        "m.cross_signing.master",
        "m.megolm_backup.v1",
    ])("withholds %s even where a rule says full, unless secrets: post", async (type) => {
        const secret = '{"iv":"x","mac":"y","passphrase":{"salt":"s","iterations":500000}}';
        const withheld = moduleWith({ rules: [rule(["*"], "full")] });
        await withheld.host.dispatch(change("c1", secret, null, { type }));
        expect(withheld.levels).toEqual(["metadata"]);
        expect(JSON.stringify(withheld.sender.sent[0]?.content)).not.toContain("salt");
        expect(String(withheld.sender.sent[0]?.content.formatted_body)).toContain("it holds encrypted secrets");

        const none = moduleWith({ rules: [rule(["m.*"], "none")] });
        await none.host.dispatch(change("c1", secret, null, { type }));
        expect(none.sender.sent).toEqual([]);

        const posted = moduleWith({ secrets: "post" });
        await posted.host.dispatch(change("c1", secret, null, { type }));
        expect(posted.sender.sent[0]?.content.body).toBe(
            auditMessageBody(
                ALICE,
                null,
                type,
                '{"iv": "x", "mac": "y", "passphrase": {"salt": "s", "iterations": 500000}}',
            ),
        );
    });
});
