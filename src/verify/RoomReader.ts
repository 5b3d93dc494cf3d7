/**
 * Reads an audit room's messages and redactions through the client-server API, oldest first, a page at a time
 * (the verifier streams them: a room of millions of events is never held in memory at once).
 */
import type { RoomEvent } from "../devenv/MatrixHttp.js";
import type { MatrixRequester } from "../matrix/EventSender.js";

const PAGE = 1000;
const FILTER = JSON.stringify({ types: ["m.room.message", "m.room.redaction"], lazy_load_members: true });

export async function resolveRoom(client: MatrixRequester, roomIdOrAlias: string): Promise<string> {
    if (roomIdOrAlias.startsWith("!")) return roomIdOrAlias;
    const res = (await client.doRequest(
        "GET",
        `/_matrix/client/v3/directory/room/${encodeURIComponent(roomIdOrAlias)}`,
        null,
        null,
    )) as { room_id: string };
    return res.room_id;
}

/** The pagination token just after `eventId` (where an incremental run goes on). */
async function tokenAfter(client: MatrixRequester, roomId: string, eventId: string): Promise<string> {
    const res = (await client.doRequest(
        "GET",
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/context/${encodeURIComponent(eventId)}`,
        { limit: "0" },
        null,
    )) as { end?: string };
    if (typeof res.end !== "string") throw new Error(`The homeserver gave no position after event ${eventId}`);
    return res.end;
}

/**
 * The room's messages and redactions, oldest first (after `afterEventId` if given), page by page;
 * `onProgress` hears the count after each page.
 */
export async function* roomEvents(
    client: MatrixRequester,
    roomId: string,
    afterEventId: string | null = null,
    onProgress: (events: number) => void = () => undefined,
): AsyncGenerator<RoomEvent> {
    let from = afterEventId !== null ? await tokenAfter(client, roomId, afterEventId) : undefined;
    let count = 0;
    for (;;) {
        const qs: Record<string, string> = { dir: "f", limit: String(PAGE), filter: FILTER };
        if (from) qs.from = from;
        const page = (await client.doRequest(
            "GET",
            `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages`,
            qs,
            null,
        )) as { chunk: RoomEvent[]; end?: string };
        yield* page.chunk;
        count += page.chunk.length;
        onProgress(count);
        if (!page.end || page.chunk.length === 0) return;
        from = page.end;
    }
}
