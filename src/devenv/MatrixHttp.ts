/** A minimal client-server API client for tests, the demo and the benchmark: the auditor and the users. */
import { createHmac } from "node:crypto";

export class MatrixHttpError extends Error {
    public constructor(
        public readonly status: number,
        public readonly body: { errcode?: string; error?: string },
        what: string,
    ) {
        super(`${what}: ${status} ${body.errcode ?? ""} ${body.error ?? ""}`);
    }
}

export interface RoomEvent {
    event_id: string;
    type: string;
    sender: string;
    origin_server_ts: number;
    content: Record<string, unknown>;
}

let txnCounter = 0;

export class MatrixHttp {
    public constructor(
        public readonly baseUrl: string,
        public readonly userId: string,
        public readonly accessToken: string,
    ) {}

    public async request<T>(method: string, path: string, body?: unknown): Promise<T> {
        const res = await fetch(this.baseUrl + path, {
            method,
            headers: { Authorization: `Bearer ${this.accessToken}`, "Content-Type": "application/json" },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        const parsed = text ? (JSON.parse(text) as T) : ({} as T);
        if (!res.ok) throw new MatrixHttpError(res.status, parsed as { errcode?: string }, `${method} ${path}`);
        return parsed;
    }

    /** PUT raw JSON text, so tests can store values JavaScript cannot represent (1.0, 2^64). */
    public async putRaw(path: string, jsonText: string): Promise<void> {
        const res = await fetch(this.baseUrl + path, {
            method: "PUT",
            headers: { Authorization: `Bearer ${this.accessToken}`, "Content-Type": "application/json" },
            body: jsonText,
        });
        const text = await res.text();
        if (!res.ok) throw new MatrixHttpError(res.status, JSON.parse(text || "{}"), `PUT ${path}`);
    }

    private get userPath(): string {
        return `/_matrix/client/v3/user/${encodeURIComponent(this.userId)}`;
    }

    public setAccountData(type: string, jsonText: string): Promise<void> {
        return this.putRaw(`${this.userPath}/account_data/${encodeURIComponent(type)}`, jsonText);
    }

    public setRoomAccountData(roomId: string, type: string, jsonText: string): Promise<void> {
        return this.putRaw(
            `${this.userPath}/rooms/${encodeURIComponent(roomId)}/account_data/${encodeURIComponent(type)}`,
            jsonText,
        );
    }

    public getAccountData<T = Record<string, unknown>>(type: string): Promise<T> {
        return this.request<T>("GET", `${this.userPath}/account_data/${encodeURIComponent(type)}`);
    }

    public async setReadMarker(roomId: string, eventId: string): Promise<void> {
        await this.request("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/read_markers`, {
            "m.fully_read": eventId,
        });
    }

    public async createRoom(body: Record<string, unknown> = {}): Promise<string> {
        const res = await this.request<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", body);
        return res.room_id;
    }

    public async invite(roomId: string, userId: string): Promise<void> {
        await this.request("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, {
            user_id: userId,
        });
    }

    public async join(roomId: string): Promise<void> {
        await this.request("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
    }

    public async sendText(roomId: string, body: string): Promise<string> {
        const txn = `t${Date.now()}.${txnCounter++}`;
        const res = await this.request<{ event_id: string }>(
            "PUT",
            `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`,
            { msgtype: "m.text", body },
        );
        return res.event_id;
    }

    /** A page of the room's timeline, oldest first, starting at `from` (or the room's beginning). */
    public async messages(roomId: string, from?: string, limit = 1000): Promise<{ chunk: RoomEvent[]; end?: string }> {
        const qs = new URLSearchParams({ dir: "f", limit: String(limit) });
        if (from) qs.set("from", from);
        return this.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?${qs}`);
    }

    public async sync(since: string | undefined, timeoutMs: number, filter: string): Promise<SyncResponse> {
        const qs = new URLSearchParams({ timeout: String(timeoutMs), filter });
        if (since) qs.set("since", since);
        return this.request("GET", `/_matrix/client/v3/sync?${qs}`);
    }
}

export interface SyncResponse {
    next_batch: string;
    rooms?: { join?: Record<string, { timeline?: { events?: RoomEvent[]; limited?: boolean; prev_batch?: string } }> };
}

/** Registers a user with Synapse's shared-secret admin API and returns a client for it. */
export async function registerUser(
    baseUrl: string,
    sharedSecret: string,
    localpart: string,
    admin = false,
): Promise<MatrixHttp> {
    const url = `${baseUrl}/_synapse/admin/v1/register`;
    const { nonce } = (await (await fetch(url)).json()) as { nonce: string };
    const password = `pw-${localpart}`;
    const mac = createHmac("sha1", sharedSecret)
        .update([nonce, localpart, password, admin ? "admin" : "notadmin"].join("\0"))
        .digest("hex");
    const res = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ nonce, username: localpart, password, admin, mac }),
    });
    const body = (await res.json()) as { user_id: string; access_token: string; errcode?: string };
    if (!res.ok) throw new MatrixHttpError(res.status, body, `register ${localpart}`);
    return new MatrixHttp(baseUrl, body.user_id, body.access_token);
}
