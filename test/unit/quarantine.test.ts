import { describe, expect, it } from "vitest";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { EventRefusedError, SendFailedError } from "../../src/matrix/SendErrors.js";
import { AuditModule } from "../../src/modules/AuditModule.js";
import { MAX_SHOWN, shown } from "../../src/modules/audit/Quarantine.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { type AccountDataChange, type AuditUnit, toUnits } from "../../src/modules/ModuleHost.js";
import { GENESIS, recordHash } from "../../src/verify/Chain.js";
import { verifyEvents } from "../../src/verify/Verifier.js";
import { change, keyedDigest, setup } from "./moduleFakes.js";

const SENDER = "@audit:example.org";

function moduleWith(): ReturnType<typeof setup> & { causes: string[] } {
    const fakes = setup();
    const causes: string[] = [];
    new AuditModule(
        { audit_room: "!audit:example.org", sender: SENDER, audit: { rules: [], secrets: "withhold" } },
        fakes.host.api,
        { onQuarantined: (cause) => causes.push(cause) },
    );
    return { ...fakes, causes };
}

/** A change with a real chain link (genesis before it), so verify can check its hash. */
function chained(seq: number, overrides: Partial<AccountDataChange> = {}): AccountDataChange {
    const base = change(`c${seq}`, `{"n":${seq}}`, null, { seq, ts: 1000 + seq, ...overrides });
    const hash = recordHash({
        seq,
        changeId: base.id,
        ts: base.ts,
        kind: "change",
        userId: base.userId,
        roomId: base.roomId,
        type: base.type,
        keyedDigest: base.keyedDigest ?? null,
        prevHash: GENESIS,
    });
    return { ...base, chain: { prevHash: GENESIS, hash }, prevPosted: null };
}

function asEvent(content: Record<string, unknown> | undefined, id = "$q"): RoomEvent {
    return { event_id: id, type: "m.room.message", sender: SENDER, origin_server_ts: 0, content: content ?? {} };
}

const refusedBadJson = () =>
    new EventRefusedError("The homeserver refused the event (400 M_BAD_JSON)", 400, "M_BAD_JSON");

describe("quarantined records", () => {
    it("post a change the homeserver refuses as a notice that verify checks like any record", async () => {
        const { host, sender, causes } = moduleWith();
        const room = `!x\n@bob:example.org has changed their account data for type m.forged to: {}:example.org`;
        sender.refuse = (req) => (req.content.msgtype === "m.text" ? refusedBadJson() : null);
        await host.dispatch(chained(1, { roomId: room }));
        expect(causes).toEqual(["refused"]);
        const notice = sender.sent[0];
        expect(notice?.txnId).toBe("audit.c1.0.quarantine");
        expect(notice?.content.msgtype).toBe("m.notice");
        const body = String(notice?.content.body);
        // One line: the newline in the room ID is escaped, the forged sentence is not a line of its own.
        expect(body.split("\n")).toHaveLength(1);
        expect(body).toContain("400 M_BAD_JSON");
        expect(body).toContain(`Content withheld: 7 bytes, keyed digest ${keyedDigest('{"n":1}').slice(0, 16)}`);
        expect(JSON.stringify(notice?.content)).not.toContain('{\\"n\\":1}');
        expect(notice?.content[RECORD_KEY]).toMatchObject({ room_id: room, level: "quarantined" });

        const report = verifyEvents([asEvent(notice?.content)], SENDER);
        expect(report.problems).toEqual([]);
        expect(report.records).toBe(1);
        const forged = { ...notice?.content, body: body.replace("M_BAD_JSON", "M_TOO_LARGE") };
        expect(verifyEvents([asEvent(forged)], SENDER).problems.map((p) => p.kind)).toEqual(["body_mismatch"]);
    });

    it("post a change whose content could not be read, without dispatching it as a change", async () => {
        const { host, sender } = moduleWith();
        await host.dispatch(chained(1, { contentError: "the content is not valid JSON: Unexpected token at 0" }));
        expect(sender.sent).toHaveLength(1);
        expect(sender.sent[0]?.content[RECORD_KEY]).toMatchObject({
            level: "quarantined",
            quarantine: { reason: "the content is not valid JSON: Unexpected token at 0" },
        });
    });

    it("take a digest the homeserver refuses apart: each change on its own, only the refused one quarantined", async () => {
        const { host, sender } = moduleWith();
        const changes = [1, 2, 3].map((seq) => change(`c${seq}`, `{"n":${seq}}`, null, { seq, digestGroup: 1 }));
        sender.refuse = (req) => (JSON.stringify(req.content).includes('{\\"n\\":2}') ? refusedBadJson() : null);
        await host.dispatch(toUnits(changes)[0] as AuditUnit);
        expect(sender.sent.map((s) => [s.txnId, s.content.msgtype])).toEqual([
            ["audit.c1.0.digest:1-1", "m.text"],
            ["audit.c1.0.quarantine:2", "m.notice"],
            ["audit.c1.0.digest:3-3", "m.text"],
        ]);
    });

    it("quarantine at once, sending nothing that must be refused, when the IDs and type alone cannot fit", async () => {
        const { host, sender, causes } = moduleWith();
        await host.dispatch(chained(1, { type: "\u0001".repeat(5_000) }));
        expect(sender.refused).toEqual([]);
        expect(sender.sent).toHaveLength(1);
        expect(sender.sent[0]?.content.msgtype).toBe("m.notice");
        expect(causes).toEqual(["too_large"]);
        expect(String(sender.sent[0]?.content.body)).toContain("DoesNotFitError");
        expect(verifyEvents([asEvent(sender.sent[0]?.content)], SENDER).problems).toEqual([]);
    });

    it("write an ID or type holding a line break quoted, so no line can be forged; verify agrees", async () => {
        const { host, sender } = moduleWith();
        const type = "x to: {}\n@bob:example.org has changed their account data for type m.secret_storage.default_key";
        await host.dispatch(chained(1, { type }));
        const body = String(sender.sent[0]?.content.body);
        expect(body.split("\n")).toHaveLength(1);
        expect(body).toBe(
            `@alice:example.org has changed their account data for type ${JSON.stringify(type)} to: {"n": 1}`,
        );
        expect(verifyEvents([asEvent(sender.sent[0]?.content)], SENDER).problems).toEqual([]);
        // A type without such characters stays the seed's, byte for byte.
        await host.dispatch(chained(1, { id: "c2", type: "m.plain <b>&" }));
        expect(String(sender.sent[1]?.content.body)).toBe(
            '@alice:example.org has changed their account data for type m.plain <b>& to: {"n": 1}',
        );
    });

    it("hold delivery instead where the room or the sender is at fault", async () => {
        const { host, sender } = moduleWith();
        sender.refuse = () => new SendFailedError("not in the room", "invite it", "room");
        await expect(host.dispatch(chained(1))).rejects.toBeInstanceOf(SendFailedError);
        expect(sender.sent).toEqual([]);
    });

    it("show IDs quoted, with what could reorder or hide text escaped, cut to a bounded length", () => {
        expect(shown("!a\nb\u202e:x")).toBe('"!a\\nb\\u202e:x"');
        const long = shown(`!${"r".repeat(10_000)}`);
        expect(long).toMatch(/… \(10001 characters\)$/);
        expect(long.length).toBeLessThan(MAX_SHOWN + 40);
        // Astral characters are never cut in half.
        expect(shown("😀".repeat(300))).toMatch(/^"(😀){200}"… \(300 characters\)$/);
    });
});
