/** Crash recovery as the appservice sees it: recovered changes and gap notices, from the wire to the room. */
import { describe, expect, it } from "vitest";
import { BadFieldError, parseChangeBatch } from "../../src/ingest/Protocol.js";
import type { EventSender, SendRequest } from "../../src/matrix/EventSender.js";
import { AuditModule, gapNoticeBody } from "../../src/modules/AuditModule.js";
import type { AuditGap } from "../../src/modules/ModuleApi.js";
import { type AccountDataChange, type GapRecord, ModuleHost } from "../../src/modules/ModuleHost.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";

const ALICE = "@alice:example.org";

const wireGap = {
    id: "g1",
    seq: 9,
    ts: 5,
    kind: "gap",
    gap: {
        lost: 1,
        keys: [{ user_id: ALICE, room_id: null, type: "m.k", unaccounted: 1, latest: "recovered" }],
        stream_positions: { after: 100, through: 110 },
    },
};

function gap(keys: AuditGap["keys"], lost = 1): AuditGap {
    return {
        id: "g",
        seq: 1,
        ts: 0,
        lost,
        keys,
        streamPositions: { after: 1, through: 9 },
        keyedDigest: null,
        chain: null,
    };
}

describe("the delivery protocol's recovery fields", () => {
    it("reads a recovered change and a gap notice", () => {
        const change = { id: "c1", seq: 10, ts: 5, user_id: ALICE, room_id: null, type: "m.k", content: "{}" };
        const { changes } = parseChangeBatch({ changes: [wireGap, { ...change, recovered: true }] });
        expect(changes[0]).toEqual({
            kind: "gap",
            id: "g1",
            seq: 9,
            ts: 5,
            lost: 1,
            keys: [{ userId: ALICE, roomId: null, type: "m.k", unaccounted: 1, latest: "recovered" }],
            streamPositions: { after: 100, through: 110 },
            keyedDigest: null,
            chain: null,
        });
        expect((changes[1] as AccountDataChange).recovered).toBe(true);
        expect((parseChangeBatch({ changes: [change] }).changes[0] as AccountDataChange).recovered).toBe(false);
    });

    it.each([
        [{ ...wireGap, kind: "other" }, "changes[0].kind"],
        [{ ...wireGap, gap: { ...wireGap.gap, lost: -1 } }, "changes[0].gap.lost"],
        [
            { ...wireGap, gap: { ...wireGap.gap, keys: [{ ...wireGap.gap.keys[0], user_id: "x" }] } },
            "changes[0].gap.keys[0].user_id",
        ],
        [
            { ...wireGap, gap: { ...wireGap.gap, keys: [{ ...wireGap.gap.keys[0], latest: "?" }] } },
            "changes[0].gap.keys[0].latest",
        ],
        [{ ...wireGap, gap: { ...wireGap.gap, stream_positions: null } }, "changes[0].gap.stream_positions"],
    ])("names the bad field of a malformed gap notice (%#)", (item, field) => {
        expect(() => parseChangeBatch({ changes: [item] })).toThrow(BadFieldError);
        try {
            parseChangeBatch({ changes: [item] });
        } catch (err) {
            expect((err as BadFieldError).field).toBe(field);
        }
    });
});

describe("gap notices", () => {
    it("name the one key, say at most how many values, and where its latest value is", () => {
        const key = {
            userId: ALICE,
            roomId: "!r:example.org",
            type: "m.k",
            unaccounted: 1,
            latest: "recovered",
        } as const;
        expect(gapNoticeBody(gap([key]))).toBe(
            `Audit gap: up to 1 earlier value of ${ALICE}'s account data of type m.k in room !r:example.org may be ` +
                "missing here: the homeserver stopped uncleanly before they could be recorded, and it keeps only " +
                "the latest value of each type. Its latest value was recovered and is recorded after this notice.",
        );
        expect(gapNoticeBody(gap([{ ...key, roomId: null, latest: "changed_after_restart" }], 3))).toMatch(
            /^Audit gap: up to 3 earlier values of @alice:example.org's account data of type m\.k may be .*It changed again after the restart; that change is recorded as usual\.$/,
        );
    });

    it("list several keys, at most 50 of them", () => {
        const keys = Array.from({ length: 52 }, (_, i) => ({
            userId: ALICE,
            roomId: null,
            type: `m.k${i}`,
            unaccounted: 1,
            latest: "recovered" as const,
        }));
        const body = gapNoticeBody(gap(keys, 2));
        expect(body).toContain("up to 2 earlier values of account data may be missing here");
        expect(body).toContain(`${ALICE}'s account data of type m.k49; 2 more.`);
        expect(body).not.toContain("m.k50");
    });

    it("are posted by the audit module as m.notice, with a transaction ID of their own", async () => {
        const sent: SendRequest[] = [];
        const host = new ModuleHost("example.org", {
            send: async (req: SendRequest) => (sent.push(req), "$e"),
        } as unknown as EventSender);
        new AuditModule(
            {
                audit_room: "!audit:example.org",
                sender: "@audit:example.org",
                audit: { rules: [], secrets: "withhold" },
            },
            host.api,
        );
        const record: GapRecord = {
            kind: "gap",
            ...gap([{ userId: ALICE, roomId: null, type: "m.k", unaccounted: 1, latest: "recovered" }]),
        };
        await host.dispatch(record);
        expect(sent).toHaveLength(1);
        expect(sent[0]?.content).toMatchObject({ msgtype: "m.notice", body: gapNoticeBody(record) });
        expect(sent[0]?.content[RECORD_KEY]).toMatchObject({ kind: "gap", lost: 1, keys_total: 1 });
        expect(sent[0]?.txnId).toBe("audit.g.0.gap");
    });
});
