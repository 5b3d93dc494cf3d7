import { describe, expect, it } from "vitest";
import { parseLossless, type LosslessObject } from "../../src/json/LosslessJson.js";
import type { EventSender, SendRequest } from "../../src/matrix/EventSender.js";
import { EventTooLargeError } from "../../src/matrix/SendErrors.js";
import { AuditModule, auditMessageBody } from "../../src/modules/AuditModule.js";
import { type AccountDataChange, ModuleHost, transactionId } from "../../src/modules/ModuleHost.js";

class RecordingSender {
    public readonly sent: SendRequest[] = [];
    public tooLargeAbove = Infinity;
    public async send(req: SendRequest): Promise<string> {
        if (Buffer.byteLength(JSON.stringify(req.content)) > this.tooLargeAbove) {
            throw new EventTooLargeError("too large");
        }
        this.sent.push(req);
        return `$event${this.sent.length}`;
    }
}

function change(id: string, content = "{}", roomId: string | null = null): AccountDataChange {
    return {
        id,
        seq: 1,
        ts: 0,
        recovered: false,
        userId: "@alice:example.org",
        roomId,
        type: "m.test",
        content: parseLossless(content) as LosslessObject,
    };
}

function setup(): { host: ModuleHost; sender: RecordingSender } {
    const sender = new RecordingSender();
    return { host: new ModuleHost("example.org", sender as unknown as EventSender), sender };
}

describe("ModuleHost", () => {
    it("runs every callback in registration order, one after another", async () => {
        const { host } = setup();
        const calls: string[] = [];
        for (const name of ["first", "second", "third"]) {
            host.api.registerAccountDataCallbacks({
                onAccountDataUpdated: async (userId, roomId, type) => {
                    calls.push(`${name} start ${userId} ${roomId} ${type}`);
                    await new Promise((resolve) => setImmediate(resolve));
                    calls.push(`${name} end`);
                },
            });
        }
        await host.dispatch(change("c1", "{}", "!r:example.org"));
        expect(calls).toEqual([
            "first start @alice:example.org !r:example.org m.test",
            "first end",
            "second start @alice:example.org !r:example.org m.test",
            "second end",
            "third start @alice:example.org !r:example.org m.test",
            "third end",
        ]);
    });

    it("stops at the first failing callback and throws", async () => {
        const { host } = setup();
        const calls: string[] = [];
        host.api.registerAccountDataCallbacks({ onAccountDataUpdated: async () => void calls.push("a") });
        host.api.registerAccountDataCallbacks({ onAccountDataUpdated: async () => Promise.reject(new Error("boom")) });
        host.api.registerAccountDataCallbacks({ onAccountDataUpdated: async () => void calls.push("c") });
        await expect(host.dispatch(change("c1"))).rejects.toThrow("boom");
        expect(calls).toEqual(["a"]);
    });

    it("derives transaction IDs from the change, callback and send, so a replay reuses them", async () => {
        const { host, sender } = setup();
        const event = { room_id: "!a:example.org", sender: "@s:example.org", type: "m.room.message", content: {} };
        host.api.registerAccountDataCallbacks({
            onAccountDataUpdated: async () => {
                await host.api.createAndSendEventIntoRoom(event);
                await host.api.createAndSendEventIntoRoom(event);
            },
        });
        host.api.registerAccountDataCallbacks({
            onAccountDataUpdated: async () =>
                void (await host.api.createAndSendEventIntoRoom(event, { idempotencyKey: "k" })),
        });
        await host.dispatch(change("abc"));
        await host.dispatch(change("abc"));
        await host.dispatch(change("def"));
        const ids = sender.sent.map((s) => s.txnId);
        expect(ids.slice(0, 3)).toEqual([
            transactionId("abc", 0, "0"),
            transactionId("abc", 0, "1"),
            transactionId("abc", 1, "k"),
        ]);
        expect(ids.slice(3, 6)).toEqual(ids.slice(0, 3));
        expect(new Set(ids.slice(6)).size).toBe(3);
        expect(ids.slice(6).some((id) => ids.slice(0, 3).includes(id))).toBe(false);
    });

    it("refuses sends outside a callback", async () => {
        const { host } = setup();
        await expect(
            host.api.createAndSendEventIntoRoom({
                room_id: "!a:b",
                sender: "@s:b",
                type: "m.room.message",
                content: {},
            }),
        ).rejects.toThrow(/only be called from an account-data callback/);
    });
});

describe("AuditModule", () => {
    const config = { audit_room: "!audit:example.org", sender: "@audit:example.org" };

    it("posts the seed's message as m.text, with the room suffix when there is a room", async () => {
        const { host, sender } = setup();
        new AuditModule(config, host.api);
        await host.dispatch(change("c1", '{"a":1.0}'));
        await host.dispatch(change("c2", "{}", "!room:example.org"));
        expect(sender.sent.map((s) => [s.roomId, s.sender, s.type, s.content])).toEqual([
            [
                "!audit:example.org",
                "@audit:example.org",
                "m.room.message",
                {
                    msgtype: "m.text",
                    body: '@alice:example.org has changed their account data for type m.test to: {"a": 1.0}',
                },
            ],
            [
                "!audit:example.org",
                "@audit:example.org",
                "m.room.message",
                {
                    msgtype: "m.text",
                    body: "@alice:example.org has changed their account data for type m.test to: {} (in room !room:example.org)",
                },
            ],
        ]);
    });

    it("cuts content that cannot fit in an event, says so, and keeps the txn ID", async () => {
        const { host, sender } = setup();
        new AuditModule(config, host.api);
        const content = JSON.stringify({ blob: "é".repeat(30_000) }); // 6 bytes each once escaped as \u00e9
        await host.dispatch(change("big", content));
        const [sent] = sender.sent;
        const body = String(sent?.content.body);
        expect(
            body.startsWith('@alice:example.org has changed their account data for type m.test to: {"blob": "\\u00e9'),
        ).toBe(true);
        expect(body).toMatch(/… \[content cut to fit in one event: showing \d+ of 180012 characters\]$/);
        expect(body).not.toMatch(/\\u[0-9a-f]{0,3}…/); // never half an escape before the cut mark
        expect(Buffer.byteLength(JSON.stringify(sent?.content))).toBeLessThanOrEqual(60_000);
        expect(sent?.txnId).toBe(transactionId("big", 0, "audit"));
    });

    it("cuts harder when the homeserver still says M_TOO_LARGE, a bounded number of times", async () => {
        const { host, sender } = setup();
        sender.tooLargeAbove = 20_000;
        new AuditModule(config, host.api);
        await host.dispatch(change("big", JSON.stringify({ blob: "x".repeat(100_000) })));
        expect(Buffer.byteLength(JSON.stringify(sender.sent[0]?.content))).toBeLessThanOrEqual(20_000);

        sender.tooLargeAbove = 10; // nothing fits: give up instead of looping
        await expect(host.dispatch(change("big2", "{}"))).rejects.toBeInstanceOf(EventTooLargeError);
    });

    it("formats exactly like the seed's f-string", () => {
        expect(auditMessageBody("@u:x", null, "t", "{}")).toBe("@u:x has changed their account data for type t to: {}");
        expect(auditMessageBody("@u:x", "!r:x", "t", "{}")).toBe(
            "@u:x has changed their account data for type t to: {} (in room !r:x)",
        );
    });
});
