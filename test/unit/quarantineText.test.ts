/**
 * A quarantined record's reason, record and text (Quarantine.ts): exact wording of the body `verify` rebuilds,
 * the HTML, and the bounds on what a hostile value can make them show.
 */
import { describe, expect, it } from "vitest";
import {
    MAX_SHOWN,
    quarantineBody,
    quarantineHtml,
    quarantineReason,
    quarantineRecord,
    shown,
} from "../../src/modules/audit/Quarantine.js";

const K = "c".repeat(64);

describe("the reason", () => {
    it("is the error's name and message on one line", () => {
        expect(quarantineReason(new TypeError("bad\r\nthing\u0000x"))).toBe("TypeError: bad thing x");
        expect(quarantineReason("plain\u007ftext")).toBe("plain text");
    });

    it("is cut to 300 characters, with no lone surrogate left", () => {
        expect(quarantineReason("x".repeat(400))).toBe("x".repeat(300));
        expect(quarantineReason("a\ud800b")).toBe("a\ufffdb");
        expect(quarantineReason("a\udc00\ud800")).toBe("a\ufffd\ufffd");
        expect(quarantineReason("refused 😀 here")).toBe("refused 😀 here");
    });
});

describe("shown values", () => {
    it("are quoted, and cut past 200 characters saying how long they were", () => {
        expect(shown("@a:x")).toBe('"@a:x"');
        expect(shown("y".repeat(MAX_SHOWN))).toBe(`"${"y".repeat(200)}"`);
        expect(shown("é".repeat(201))).toBe(`"${"é".repeat(200)}"… (201 characters)`);
    });
});

describe("the record and its text", () => {
    const trail = { keyedDigest: K, chain: null };

    it("of a change: metadata only, the size the host module gave, and the reason", () => {
        const change = {
            kind: "change" as const,
            id: "c",
            seq: 4,
            ts: 1,
            recovered: false,
            contentJson: "",
            userId: "@a:x",
            roomId: "!r:x",
            type: "m.t",
            contentSize: 70_000,
            ...trail,
        };
        const record = quarantineRecord(change, "too big");
        expect(record).toMatchObject({
            kind: "change",
            level: "quarantined",
            content_size: 70_000,
            content_digest: `hmac-sha256:${K}`,
            quarantine: { reason: "too big" },
        });
        expect(quarantineRecord({ ...change, contentSize: undefined, contentJson: "{}" }, "r").content_size).toBe(2);
        const fields = { ...(record as object), kind: "change", seq: 4, quarantine: { reason: "too <big>" } };
        expect(quarantineBody(fields)).toBe(
            'Audit record quarantined: seq 4, a change by "@a:x" of type "m.t" in room "!r:x", could not be posted ' +
                `as a record (too <big>). Content withheld: 70000 bytes, keyed digest ${K.slice(0, 16)}.`,
        );
        expect(quarantineHtml(fields)).toBe(
            "<p><strong>Audit record quarantined:</strong> seq 4, a change by &quot;@a:x&quot; of type &quot;m.t&quot; " +
                "in room &quot;!r:x&quot;, could not be posted as a record (<code>too &lt;big&gt;</code>). Content " +
                `withheld: 70000 bytes, keyed digest ${K.slice(0, 16)}.</p>`,
        );
        const global = {
            kind: "change",
            seq: 1,
            user_id: "@a:x",
            type: "t",
            content_size: 3,
            quarantine: { reason: "r" },
        };
        expect(quarantineBody(global)).toBe(
            'Audit record quarantined: seq 1, a change by "@a:x" of type "t", could not be posted as a record (r). ' +
                "Content withheld: 3 bytes.",
        );
    });

    it("of a gap notice: its keys counted, not listed", () => {
        const key = { userId: "@a:x", roomId: null, type: "t", unaccounted: 1, latest: "recovered" as const };
        const gap = {
            kind: "gap" as const,
            id: "g",
            seq: 2,
            ts: 1,
            lost: 1,
            keys: [key, key],
            streamPositions: { after: 0, through: 1 },
            ...trail,
        };
        const record = quarantineRecord(gap, "r");
        expect(record).toMatchObject({ kind: "gap", keys: [], keys_total: 2, quarantine: { reason: "r" } });
        expect(quarantineBody({ kind: "gap", seq: 2, quarantine: { reason: "r" } })).toBe(
            "Audit record quarantined: seq 2, a gap notice, could not be posted as a record (r).",
        );
    });

    it("of a (de)activation", () => {
        const record = quarantineRecord(
            {
                kind: "deactivation",
                id: "d",
                seq: 3,
                ts: 1,
                userId: "@a:x",
                deactivated: true,
                byAdmin: false,
                ...trail,
            },
            "r",
        );
        expect(record).toMatchObject({
            kind: "deactivation",
            user_id: "@a:x",
            deactivated: true,
            quarantine: { reason: "r" },
        });
        expect(quarantineBody({ kind: "deactivation", seq: 3, user_id: "@a:x", quarantine: { reason: "r" } })).toBe(
            'Audit record quarantined: seq 3, the (de)activation of "@a:x", could not be posted as a record (r).',
        );
    });
});
