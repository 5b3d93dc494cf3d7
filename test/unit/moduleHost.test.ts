import { SendFailedError } from "../../src/matrix/SendErrors.js";
import { describe, expect, it } from "vitest";
import { ModuleHost, transactionId } from "../../src/modules/ModuleHost.js";
import { change, setup } from "./moduleFakes.js";

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

    it("stops at a failure that holds delivery and throws it", async () => {
        const { host } = setup();
        const calls: string[] = [];
        host.api.registerAccountDataCallbacks({ onAccountDataUpdated: async () => void calls.push("a") });
        host.api.registerAccountDataCallbacks({
            onAccountDataUpdated: async () => Promise.reject(new SendFailedError("room gone", undefined, "room")),
        });
        host.api.registerAccountDataCallbacks({ onAccountDataUpdated: async () => void calls.push("c") });
        await expect(host.dispatch(change("c1"))).rejects.toThrow("room gone");
        expect(calls).toEqual(["a"]);
    });

    it("goes on past a module's failure on one record, and says so", async () => {
        const failures: unknown[] = [];
        const { sender } = setup();
        const host = new ModuleHost("example.org", sender as never, (_unit, err) => failures.push(err));
        const calls: string[] = [];
        host.api.registerAccountDataCallbacks({
            onAccountDataUpdated: async () => Promise.reject(new TypeError("bug")),
        });
        host.api.registerAccountDataCallbacks({ onAccountDataUpdated: async () => void calls.push("c") });
        await host.dispatch(change("c1"));
        expect(calls).toEqual(["c"]);
        expect(failures).toHaveLength(1);
        expect(String(failures[0])).toContain("bug");
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
