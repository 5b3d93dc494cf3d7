/** RoomReader: how `verify` pages through an audit room (oldest first, from where an earlier run stopped). */
import { describe, expect, it } from "vitest";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import type { MatrixRequester } from "../../src/matrix/EventSender.js";
import { resolveRoom, roomEvents } from "../../src/verify/RoomReader.js";

interface Call {
    method: string;
    path: string;
    qs: Record<string, string> | null;
}

/** A homeserver answering each request with the next of `answers`, recording what was asked. */
function fakeClient(answers: unknown[]): { client: MatrixRequester; calls: Call[] } {
    const calls: Call[] = [];
    const client = {
        doRequest: (method: string, path: string, qs: Record<string, string> | null) => {
            calls.push({ method, path, qs });
            return Promise.resolve(answers.shift());
        },
    } as unknown as MatrixRequester;
    return { client, calls };
}

const event = (id: string): RoomEvent => ({
    event_id: id,
    type: "m.room.message",
    sender: "@a:x",
    origin_server_ts: 0,
    content: {},
});

async function collect(events: AsyncGenerator<RoomEvent>): Promise<string[]> {
    const ids: string[] = [];
    for await (const e of events) ids.push(e.event_id);
    return ids;
}

describe("resolveRoom", () => {
    it("takes a room ID as it is, without asking the homeserver", async () => {
        const { client, calls } = fakeClient([]);
        expect(await resolveRoom(client, "!room:x")).toBe("!room:x");
        expect(calls).toEqual([]);
    });

    it("looks an alias up in the room directory, escaped in the path", async () => {
        const { client, calls } = fakeClient([{ room_id: "!found:x" }]);
        expect(await resolveRoom(client, "#audit/log:x")).toBe("!found:x");
        expect(calls).toEqual([
            { method: "GET", path: "/_matrix/client/v3/directory/room/%23audit%2Flog%3Ax", qs: null },
        ]);
    });
});

describe("roomEvents", () => {
    const FILTER = '{"types":["m.room.message","m.room.redaction"],"lazy_load_members":true}';

    it("reads forwards from the room's start, a page at a time, until a page has no next token", async () => {
        const { client, calls } = fakeClient([
            { chunk: [event("$1"), event("$2")], end: "t1" },
            { chunk: [event("$3")], end: "t2" },
            { chunk: [event("$4")] },
        ]);
        const progress: number[] = [];
        expect(await collect(roomEvents(client, "!r/1:x", null, (n) => progress.push(n)))).toEqual([
            "$1",
            "$2",
            "$3",
            "$4",
        ]);
        expect(progress).toEqual([2, 3, 4]);
        const path = "/_matrix/client/v3/rooms/!r%2F1%3Ax/messages";
        expect(calls).toEqual([
            { method: "GET", path, qs: { dir: "f", limit: "1000", filter: FILTER } },
            { method: "GET", path, qs: { dir: "f", limit: "1000", filter: FILTER, from: "t1" } },
            { method: "GET", path, qs: { dir: "f", limit: "1000", filter: FILTER, from: "t2" } },
        ]);
    });

    it("stops at an empty page even when the homeserver gives a token", async () => {
        const { client, calls } = fakeClient([
            { chunk: [event("$1")], end: "t1" },
            { chunk: [], end: "t1" },
        ]);
        expect(await collect(roomEvents(client, "!r:x"))).toEqual(["$1"]);
        expect(calls).toHaveLength(2);
    });

    it("goes on after a given event, from the position the event's context gives", async () => {
        const { client, calls } = fakeClient([{ end: "after-$9" }, { chunk: [event("$10")] }]);
        expect(await collect(roomEvents(client, "!r:x", "$9/x"))).toEqual(["$10"]);
        expect(calls[0]).toEqual({
            method: "GET",
            path: "/_matrix/client/v3/rooms/!r%3Ax/context/%249%2Fx",
            qs: { limit: "0" },
        });
        expect(calls[1]?.qs).toMatchObject({ from: "after-$9" });
    });

    it("fails, naming the event, when the homeserver gives no position after it", async () => {
        const { client } = fakeClient([{}]);
        await expect(collect(roomEvents(client, "!r:x", "$9"))).rejects.toThrow(
            "The homeserver gave no position after event $9",
        );
    });
});
