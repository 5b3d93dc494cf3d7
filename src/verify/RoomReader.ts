/** Reads an audit room's messages and redactions from its start, as the sender, through the client-server API. */
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

/** Every message and redaction in the room, oldest first; `onProgress` hears the count after each page. */
export async function readRoom(
    client: MatrixRequester,
    roomId: string,
    onProgress: (events: number) => void = () => undefined,
): Promise<RoomEvent[]> {
    const events: RoomEvent[] = [];
    let from: string | undefined;
    for (;;) {
        const qs: Record<string, string> = { dir: "f", limit: String(PAGE), filter: FILTER };
        if (from) qs.from = from;
        const page = (await client.doRequest(
            "GET",
            `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages`,
            qs,
            null,
        )) as { chunk: RoomEvent[]; end?: string };
        events.push(...page.chunk);
        onProgress(events.length);
        if (!page.end || page.chunk.length === 0) return events;
        from = page.end;
    }
}
