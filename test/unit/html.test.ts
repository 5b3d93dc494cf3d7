/** The HTML of audit messages (Html.ts): exact markup, every user-given value escaped, long contents folded. */
import { describe, expect, it } from "vitest";
import type { AuditGap, UserDeactivation } from "../../src/modules/ModuleApi.js";
import {
    changeHtml,
    deactivationHtml,
    escapeHtml,
    gapHtml,
    jsonBlock,
    matrixToLink,
    omittedHtml,
    withheldHtml,
} from "../../src/modules/audit/Html.js";

const ALICE_LINK = '<a href="https://matrix.to/#/%40alice%3Aexample.org">@alice:example.org</a>';

describe("escaping and links", () => {
    it("escapes the five characters HTML gives meaning to", () => {
        expect(escapeHtml(`<a href="x" onclick='y'>&</a>`)).toBe(
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;",
        );
    });

    it("links an ID to matrix.to, percent-encoded in the URL and escaped in the text", () => {
        expect(matrixToLink("@alice:example.org")).toBe(ALICE_LINK);
        expect(matrixToLink("!<r>&:x")).toBe('<a href="https://matrix.to/#/!%3Cr%3E%26%3Ax">!&lt;r&gt;&amp;:x</a>');
    });
});

describe("a content's block", () => {
    it("shows a short content as an escaped JSON code block", () => {
        expect(jsonBlock('{"a": "<b>"}', 12)).toBe(
            '<pre><code class="language-json">{&quot;a&quot;: &quot;&lt;b&gt;&quot;}</code></pre>',
        );
    });

    it("folds a content over 400 characters or 12 lines, saying its size", () => {
        const block = (json: string) => `<pre><code class="language-json">${json}</code></pre>`;
        const long = "x".repeat(401);
        expect(jsonBlock(long, 999)).toBe(`<details><summary>Content (999 bytes)</summary>${block(long)}</details>`);
        expect(jsonBlock("x".repeat(400), 400)).toBe(block("x".repeat(400)));
        const lines13 = Array.from({ length: 13 }, () => "1").join("\n");
        const lines12 = Array.from({ length: 12 }, () => "1").join("\n");
        expect(jsonBlock(lines13, 25)).toMatch(/^<details><summary>Content \(25 bytes\)<\/summary>/);
        expect(jsonBlock(lines12, 23)).toBe(block(lines12));
    });
});

describe("a change's HTML", () => {
    it("names the user, the type and the room, then the content", () => {
        expect(
            changeHtml({
                userId: "@alice:example.org",
                roomId: "!r:x",
                type: "m.<t>",
                recovered: false,
                contentHtml: "C",
            }),
        ).toBe(
            `<p>${ALICE_LINK} changed their account data <code>m.&lt;t&gt;</code> in room ` +
                '<a href="https://matrix.to/#/!r%3Ax">!r:x</a>:</p>C',
        );
    });

    it("says when the change was recovered after an unclean shutdown", () => {
        expect(
            changeHtml({ userId: "@alice:example.org", roomId: null, type: "t", recovered: true, contentHtml: "" }),
        ).toBe(
            `<p>${ALICE_LINK} changed their account data <code>t</code>:</p>` +
                "<p><em>Recovered after an unclean shutdown of the homeserver: the value it holds now.</em></p>",
        );
    });

    it("says why a content is withheld, with its size and keyed digest", () => {
        expect(withheldHtml(42, "0123456789abcdef99", "secret")).toBe(
            "<p><em>Content withheld</em> (it holds encrypted secrets): 42 bytes, keyed digest <code>0123456789abcdef</code>.</p>",
        );
        expect(withheldHtml(3, null, "policy")).toBe(
            "<p><em>Content withheld</em> (the audit policy records metadata only): 3 bytes.</p>",
        );
    });

    it("points to the body for a content too long to show twice", () => {
        expect(omittedHtml(70000)).toBe(
            "<p><em>Content of 70000 bytes: too long to show here as well, see the plain-text body.</em></p>",
        );
    });
});

describe("notices' HTML", () => {
    const trail = { keyedDigest: null, chain: null };

    it("a gap notice's, for one key and for many (at most 50 listed)", () => {
        const key = {
            userId: "@alice:example.org",
            roomId: null,
            type: "t",
            unaccounted: 1,
            latest: "recovered" as const,
        };
        const gap = (keys: AuditGap["keys"], lost: number): AuditGap => ({
            id: "g",
            seq: 1,
            ts: 0,
            lost,
            keys,
            streamPositions: { after: 0, through: 1 },
            ...trail,
        });
        expect(gapHtml(gap([{ ...key, roomId: "!r:x" }], 1))).toBe(
            "<p><strong>Audit gap:</strong> up to 1 earlier value of account data may be missing here. The homeserver " +
                "stopped uncleanly before they could be recorded, and it keeps only the latest value of each type. " +
                "They belonged to this key; the latest value of each is recorded after this notice.</p>" +
                `<ul><li>${ALICE_LINK}: <code>t</code> in room <a href="https://matrix.to/#/!r%3Ax">!r:x</a></li></ul>`,
        );
        const many = gapHtml(
            gap(
                Array.from({ length: 52 }, (_, i) => ({ ...key, type: `t${i}` })),
                3,
            ),
        );
        expect(many).toContain("up to 3 earlier values of account data");
        expect(many).toContain("They belonged to one or more of these keys;");
        expect(many.match(/<li>/g)).toHaveLength(51);
        expect(many).toContain("<code>t49</code></li><li>2 more</li></ul>");
        expect(
            gapHtml(
                gap(
                    Array.from({ length: 50 }, () => key),
                    2,
                ),
            ),
        ).not.toContain("more</li>");
    });

    it("a deactivation's and a reactivation's, saying by whom", () => {
        const record = (deactivated: boolean, byAdmin: boolean): UserDeactivation => ({
            id: "d",
            seq: 1,
            ts: 0,
            userId: "@alice:example.org",
            deactivated,
            byAdmin,
            ...trail,
        });
        expect(deactivationHtml(record(false, true))).toBe(
            `<p>${ALICE_LINK} was <strong>reactivated</strong> by a server admin.</p>`,
        );
        expect(deactivationHtml(record(false, false))).toBe(
            `<p>${ALICE_LINK} was <strong>reactivated</strong> by themselves.</p>`,
        );
        expect(deactivationHtml(record(true, false))).toBe(
            `<p>${ALICE_LINK} was <strong>deactivated</strong> by themselves. The homeserver deleted all their account ` +
                "data with it, without reporting each type: this record stands for those deletions.</p>",
        );
        expect(deactivationHtml(record(true, true))).toContain("<strong>deactivated</strong> by a server admin.");
    });
});
