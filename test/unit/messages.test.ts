/**
 * The wording of the plain-text bodies (Messages.ts): each message's exact text, since auditors read them and
 * `verify` rebuilds them byte for byte.
 */
import { describe, expect, it } from "vitest";
import type { UserDeactivation } from "../../src/modules/ModuleApi.js";
import {
    auditMessageBody,
    checkpointBody,
    checkpointHtml,
    cutMessageBody,
    deactivationBody,
    quoted,
    safeField,
    withheldText,
} from "../../src/modules/audit/Messages.js";

const ALICE = "@alice:example.org";

describe("deactivation records' wording", () => {
    const record = (deactivated: boolean, byAdmin: boolean): UserDeactivation => ({
        keyedDigest: null,
        chain: null,
        id: "d1",
        seq: 4,
        ts: 0,
        userId: ALICE,
        deactivated,
        byAdmin,
    });

    it("says who deactivated the account and that the record stands for its account data's deletion", () => {
        const tail =
            "The homeserver deleted all their account data with it, without reporting each type: this record " +
            "stands for those deletions.";
        expect(deactivationBody(record(true, true))).toBe(`${ALICE} was deactivated by a server admin. ${tail}`);
        expect(deactivationBody(record(true, false))).toBe(`${ALICE} was deactivated by themselves. ${tail}`);
    });

    it("says who reactivated the account, in one sentence", () => {
        expect(deactivationBody(record(false, true))).toBe(`${ALICE} was reactivated by a server admin.`);
        expect(deactivationBody(record(false, false))).toBe(`${ALICE} was reactivated by themselves.`);
    });

    it("quotes a user ID that could forge a line", () => {
        expect(deactivationBody({ ...record(false, true), userId: "@a\n@b:x" })).toBe(
            '"@a\\n@b:x" was reactivated by a server admin.',
        );
    });
});

describe("the change sentence", () => {
    it("is the seed's sentence, with the room after it when the change is per room", () => {
        expect(auditMessageBody(ALICE, null, "m.t", '{"a": 1}')).toBe(
            `${ALICE} has changed their account data for type m.t to: {"a": 1}`,
        );
        expect(auditMessageBody(ALICE, "!r:x", "m.t", "{}")).toBe(
            `${ALICE} has changed their account data for type m.t to: {} (in room !r:x)`,
        );
    });

    it("quotes IDs and types holding a control, bidi or zero-width character, and leaves others as they are", () => {
        expect(safeField("m.theme")).toBe("m.theme");
        expect(safeField("é☃ and spaces")).toBe("é☃ and spaces");
        expect(safeField("x\ny")).toBe('"x\\ny"');
        expect(safeField("a\u202eb")).toBe('"a\\u202eb"');
        expect(safeField("a\u200bb")).toBe('"a\\u200bb"');
        expect(safeField("a\u0085b")).toBe('"a\\u0085b"');
        expect(safeField("a\u2066b")).toBe('"a\\u2066b"');
        expect(safeField("a\ufeffb")).toBe('"a\\ufeffb"');
        expect(safeField("a\u007fb")).toBe('"a\\u007fb"');
        expect(auditMessageBody(ALICE, "!r\u2028:x", "t\t", "{}")).toBe(
            `${ALICE} has changed their account data for type "t\\t" to: {} (in room "!r\\u2028:x")`,
        );
    });

    it("escapes every unsafe character when quoting, not only the first", () => {
        expect(quoted("a\u200eb\u200fc\u2069")).toBe('"a\\u200eb\\u200fc\\u2069"');
        expect(quoted('say "hi"')).toBe('"say \\"hi\\""');
    });
});

describe("withheld content", () => {
    it("shows the size and the keyed digest's first 16 hex digits", () => {
        expect(withheldText(42, "0123456789abcdef0123")).toBe(
            "[content withheld: 42 bytes, keyed digest 0123456789abcdef]",
        );
    });

    it("shows the size alone when there is no keyed digest", () => {
        expect(withheldText(0, null)).toBe("[content withheld: 0 bytes]");
    });
});

describe("a content cut to fit in one event", () => {
    it("shows as much as fits, then says how much of how long a text it shows", () => {
        const json = `{"k": "${"x".repeat(200)}"}`;
        const body = cutMessageBody(ALICE, null, "m.t", json, (b) => b.length <= 200, 150);
        expect(body.length).toBeLessThanOrEqual(200);
        const shown = /showing (\d+) of (\d+) characters\]$/.exec(body);
        expect(shown?.[2]).toBe(String(json.length));
        const count = Number(shown?.[1]);
        expect(count).toBeGreaterThan(0);
        expect(body).toBe(
            auditMessageBody(
                ALICE,
                null,
                "m.t",
                `${json.slice(0, count)}… [content cut to fit in one event: showing ${count} of ${json.length} characters]`,
            ),
        );
        // It shrinks by a tenth at a time: a tenth more would not have fitted.
        expect(Math.floor(count / 0.9) + 1).toBeGreaterThan(count);
    });

    it("keeps the first length that fits", () => {
        const json = `["${"y".repeat(100)}"]`;
        const body = cutMessageBody(ALICE, null, "m.t", json, () => true, 30);
        expect(body).toContain(`${json.slice(0, 30)}… [content cut to fit in one event: showing 30 of 104 characters]`);
    });

    it("never ends on half an escape sequence", () => {
        const json = '["\\u00e9\\u00e9\\\\\\u00e9"]';
        for (let length = 0; length <= json.length; length++) {
            const body = cutMessageBody(ALICE, null, "m.t", json, () => true, length);
            const shown = body.slice(body.indexOf("to: ") + 4, body.indexOf("… [content cut"));
            expect(shown, `cut at ${length}`).not.toMatch(/\\u[0-9a-f]{0,3}$/);
            expect((/\\*$/.exec(shown)?.[0].length ?? 0) % 2, `cut at ${length}`).toBe(0);
            expect(json.startsWith(shown)).toBe(true);
            expect(shown.length).toBeGreaterThanOrEqual(Math.min(length, json.length) - 6);
        }
    });

    it("shows nothing of the content when even an empty cut does not fit", () => {
        const body = cutMessageBody(ALICE, null, "m.t", '{"a": 1}', () => false, 5);
        expect(body).toBe(
            `${ALICE} has changed their account data for type m.t to: … [content cut to fit in one event: showing 0 of 8 characters]`,
        );
    });
});

describe("checkpoints", () => {
    it("name the seq, the time and the chain head's first 16 hex digits", () => {
        const text =
            "Audit checkpoint: seq 7 at 2023-11-14T22:13:20.000Z, chain head abcdef0123456789. The trail is alive: " +
            "nothing else was recorded for the checkpoint interval.";
        expect(checkpointBody({ seq: 7, ts: 1_700_000_000_000, hash: `abcdef0123456789${"0".repeat(48)}` })).toBe(text);
        expect(checkpointHtml({ seq: 7, ts: 1_700_000_000_000, hash: `abcdef0123456789${"0".repeat(48)}` })).toBe(
            `<p><em>${text}</em></p>`,
        );
    });

    it("leave the head out when the record has no hash", () => {
        expect(checkpointBody({ seq: 1, ts: 0, hash: null })).toMatch(
            /^Audit checkpoint: seq 1 at 1970-01-01T00:00:00\.000Z\. The trail is alive/,
        );
    });
});
