import { MatrixClient } from "@vector-im/matrix-bot-sdk";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Clock, EventSender, type RetryReason } from "../../src/matrix/EventSender.js";
import { EventRefusedError, EventTooLargeError, holdsDelivery, SendFailedError } from "../../src/matrix/SendErrors.js";
import { FakeHomeserver } from "./fakeHomeserver.js";

/** Real time is not needed to test waits: record them and move a virtual clock instead. */
class VirtualClock implements Clock {
    public time = 0;
    public readonly waits: number[] = [];
    public now(): number {
        return this.time;
    }
    public async sleep(ms: number): Promise<void> {
        this.waits.push(ms);
        this.time += ms;
    }
}

const REQUEST = {
    roomId: "!audit:example.org",
    sender: "@audit:example.org",
    type: "m.room.message",
    content: { msgtype: "m.text", body: "hi" },
    txnId: "audit.change1.0.audit",
};

describe("EventSender against a homeserver over HTTP", () => {
    let hs: FakeHomeserver;
    let clock: VirtualClock;
    let retries: RetryReason[];
    let sender: EventSender;

    beforeEach(async () => {
        hs = new FakeHomeserver();
        await hs.start();
        clock = new VirtualClock();
        retries = [];
        const client = new MatrixClient(hs.url, "as_token");
        sender = new EventSender(
            () => client,
            { initialMs: 100, maxMs: 400, deadlineMs: 10_000 },
            (r) => retries.push(r),
            clock,
        );
    });
    afterEach(async () => {
        await hs.stop();
    });

    it("PUTs to the send endpoint with the given transaction ID and returns the event ID", async () => {
        expect(await sender.send(REQUEST)).toBe("$e1");
        expect(hs.requests).toEqual([
            {
                method: "PUT",
                url: "/_matrix/client/v3/rooms/!audit%3Aexample.org/send/m.room.message/audit.change1.0.audit",
                body: REQUEST.content,
            },
        ]);
    });

    it("waits retry_after_ms on M_LIMIT_EXCEEDED and retries with the same transaction ID", async () => {
        hs.script({ status: 429, body: { errcode: "M_LIMIT_EXCEEDED", error: "slow down", retry_after_ms: 1234 } });
        expect(await sender.send(REQUEST)).toBe("$e2");
        expect(clock.waits).toEqual([1234]);
        expect(retries).toEqual(["rate_limited"]);
        expect(new Set(hs.sendTxnIds())).toEqual(new Set([REQUEST.txnId]));
    });

    it("backs off exponentially, capped, on 5xx (JSON or not) and network errors", async () => {
        hs.script(
            { status: 502, body: "<html>Bad Gateway</html>" },
            { status: 500, body: { errcode: "M_UNKNOWN", error: "oops" } },
            "hang-up",
            { status: 503, body: "unavailable" },
            { status: 504, body: "timeout" },
        );
        expect(await sender.send(REQUEST)).toBe("$e6");
        expect(clock.waits).toEqual([100, 200, 400, 400, 400]);
        expect(retries).toEqual(["server_error", "server_error", "network_error", "server_error", "server_error"]);
        expect(hs.sendTxnIds()).toEqual(Array(6).fill(REQUEST.txnId));
    });

    it("gives up with SendFailedError once the deadline would pass", async () => {
        for (let i = 0; i < 100; i++) hs.script({ status: 502, body: "down" });
        await expect(sender.send(REQUEST)).rejects.toThrow(SendFailedError);
        expect(clock.time).toBeLessThanOrEqual(10_000);
        expect(hs.requests.length).toBeGreaterThan(5);
    });

    it("throws EventTooLargeError on M_TOO_LARGE without retrying", async () => {
        hs.script({ status: 413, body: { errcode: "M_TOO_LARGE", error: "event too large" } });
        await expect(sender.send(REQUEST)).rejects.toBeInstanceOf(EventTooLargeError);
        expect(hs.requests).toHaveLength(1);
    });

    it("fails on M_FORBIDDEN with a hint for the admin, without retrying", async () => {
        hs.script({ status: 403, body: { errcode: "M_FORBIDDEN", error: "not in room" } });
        const err = await sender.send(REQUEST).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SendFailedError);
        expect((err as SendFailedError).adminHint).toContain("Invite @audit:example.org to !audit:example.org");
        expect(hs.requests).toHaveLength(1);
    });

    it("throws EventRefusedError on other 4xx without retrying: the event's fault, not the delivery's", async () => {
        hs.script({ status: 400, body: { errcode: "M_BAD_JSON", error: "no" } });
        const err = await sender.send(REQUEST).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(EventRefusedError);
        expect(err).toMatchObject({ status: 400, errcode: "M_BAD_JSON" });
        expect(holdsDelivery(err)).toBe(false);
        expect(hs.requests).toHaveLength(1);
    });

    it.each([
        [403, "M_FORBIDDEN", "room"],
        [404, "M_NOT_FOUND", "room"],
        [401, "M_UNKNOWN_TOKEN", "auth"],
    ])("holds delivery on %i %s (reason %s)", async (status, errcode, reason) => {
        hs.script({ status, body: { errcode, error: "no" } });
        const err = await sender.send(REQUEST).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SendFailedError);
        expect((err as SendFailedError).reason).toBe(reason);
        expect(holdsDelivery(err)).toBe(true);
    });

    it("refuses an event holding a lone surrogate before sending it", async () => {
        const err = await sender
            .send({ ...REQUEST, content: { body: "ok", nested: { html: "x\ud800y" } } })
            .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(EventRefusedError);
        expect(String((err as Error).message)).toContain("html");
        expect(hs.requests).toHaveLength(0);
        // A well-formed pair is fine.
        await sender.send({ ...REQUEST, content: { body: "😀" } });
        expect(hs.requests).toHaveLength(1);
    });
});

describe("EventSender with the sender's device", () => {
    let hs: FakeHomeserver;

    beforeEach(async () => {
        hs = new FakeHomeserver();
        await hs.start();
    });
    afterEach(async () => {
        await hs.stop();
    });

    it("sends with user_id and device_id, and makes the device again if the homeserver lost it", async () => {
        let ensured = 0;
        const device = {
            queryFor: (userId: string) => (userId === REQUEST.sender ? { user_id: userId, device_id: "DEV" } : null),
            ensure: async () => (ensured++, true),
        };
        const retries: RetryReason[] = [];
        const client = new MatrixClient(hs.url, "as_token");
        const sender = new EventSender(
            () => client,
            { initialMs: 100, maxMs: 400, deadlineMs: 10_000 },
            (r) => retries.push(r),
            new VirtualClock(),
            device,
        );
        hs.script({ status: 400, body: { errcode: "M_UNKNOWN_DEVICE", error: "no such device" } });
        expect(await sender.send(REQUEST)).toBe("$e2");
        expect(ensured).toBe(1);
        expect(retries).toEqual(["unknown_device"]);
        expect(hs.requests.map((r) => r.url.split("?")[1])).toEqual([
            "user_id=%40audit%3Aexample.org&device_id=DEV",
            "user_id=%40audit%3Aexample.org&device_id=DEV",
        ]);
        expect(new Set(hs.sendTxnIds())).toEqual(new Set([REQUEST.txnId]));
    });
});
