/** The auditor: a real user in the audit room who reads it through /sync, as an auditor's client would. */
import type { MatrixHttp, RoomEvent } from "./MatrixHttp.js";

export class AuditorClient {
    private since: string | undefined;
    /** Audit messages seen so far, in timeline order. */
    public readonly received: RoomEvent[] = [];

    public constructor(
        public readonly http: MatrixHttp,
        public readonly roomId: string,
        private readonly senderUserId: string,
    ) {}

    private get filter(): string {
        return JSON.stringify({
            presence: { types: [] },
            account_data: { types: [] },
            room: {
                rooms: [this.roomId],
                state: { types: [] },
                ephemeral: { types: [] },
                account_data: { types: [] },
                timeline: { types: ["m.room.message"], senders: [this.senderUserId], limit: 1000 },
            },
        });
    }

    /** One /sync long-poll; appends new audit messages to `received` and returns them. */
    public async syncOnce(timeoutMs: number): Promise<RoomEvent[]> {
        const res = await this.http.sync(this.since, timeoutMs, this.filter);
        const timeline = res.rooms?.join?.[this.roomId]?.timeline;
        let events = timeline?.events ?? [];
        if (timeline?.limited && this.since !== undefined && timeline.prev_batch) {
            // More arrived than one sync returns: fetch the gap so nothing is missed.
            events = await this.backfillGap(timeline.prev_batch, events);
        }
        this.since = res.next_batch;
        const fresh = events.filter((e) => e.type === "m.room.message" && e.sender === this.senderUserId);
        this.received.push(...fresh);
        return fresh;
    }

    private async backfillGap(prevBatch: string, latest: RoomEvent[]): Promise<RoomEvent[]> {
        const older: RoomEvent[] = [];
        let from: string | undefined = prevBatch;
        const qs = (f: string): string =>
            `/_matrix/client/v3/rooms/${encodeURIComponent(this.roomId)}/messages?dir=b&limit=1000&from=${encodeURIComponent(f)}&to=${encodeURIComponent(this.since ?? "")}`;
        while (from) {
            const page: { chunk: RoomEvent[]; end?: string } = await this.http.request("GET", qs(from));
            older.push(...page.chunk);
            from = page.chunk.length > 0 ? page.end : undefined;
        }
        return [...older.reverse(), ...latest];
    }

    /** Starts the sync stream now, so only messages sent after this call are collected. */
    public async catchUp(): Promise<void> {
        await this.syncOnce(0);
        this.received.length = 0;
    }

    /**
     * Waits until at least `count` audit messages have been received in total, long-polling /sync.
     * Fails after `timeoutMs` with what did arrive.
     */
    public async waitForMessages(count: number, timeoutMs = 60_000): Promise<RoomEvent[]> {
        const deadline = Date.now() + timeoutMs;
        while (this.received.length < count) {
            const left = deadline - Date.now();
            if (left <= 0) {
                throw new Error(`Timed out with ${this.received.length} of ${count} audit messages`);
            }
            await this.syncOnce(Math.min(left, 10_000));
        }
        return this.received.slice(0, count);
    }

    /** Waits for the next audit message matching `predicate`. */
    public async waitForRoomEvent(predicate: (e: RoomEvent) => boolean, timeoutMs = 60_000): Promise<RoomEvent> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const found = this.received.find(predicate);
            if (found) return found;
            const left = deadline - Date.now();
            if (left <= 0) throw new Error("Timed out waiting for a matching audit message");
            await this.syncOnce(Math.min(left, 10_000));
        }
    }

    /** Every audit message in the room, from its beginning, via /messages. */
    public async allMessages(): Promise<RoomEvent[]> {
        const out: RoomEvent[] = [];
        let from: string | undefined;
        for (;;) {
            const page = await this.http.messages(this.roomId, from);
            out.push(...page.chunk.filter((e) => e.type === "m.room.message" && e.sender === this.senderUserId));
            if (!page.end || page.chunk.length === 0) return out;
            from = page.end;
        }
    }

    public bodies(): string[] {
        return this.received.map((e) => String(e.content.body));
    }
}
