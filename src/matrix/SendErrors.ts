/**
 * Why a send failed, sorted by whose fault it is: the event's (what it holds: sending it again cannot succeed,
 * so the record is quarantined and the trail goes on), or the delivery's (the room, the sender, the token, or a
 * homeserver that does not answer: every record would fail the same way, so delivery holds and nothing is lost).
 */

/** The homeserver refused the event for what it holds; sending it again cannot succeed. */
export class EventRefusedError extends Error {
    public constructor(
        message: string,
        /** The HTTP status and Matrix errcode, where the homeserver gave them (null: refused before sending). */
        public readonly status: number | null = null,
        public readonly errcode: string | null = null,
    ) {
        super(message);
        this.name = "EventRefusedError";
    }
}

/** The homeserver refused the event as too large (M_TOO_LARGE); a smaller form may still fit. */
export class EventTooLargeError extends EventRefusedError {
    public constructor(message: string) {
        super(message, 413, "M_TOO_LARGE");
        this.name = "EventTooLargeError";
    }
}

/**
 * Why delivery holds: `room` (the sender may not post into the room: not joined, no power, no such room),
 * `auth` (the homeserver does not accept the appservice's token), `transient` (5xx, network errors or rate
 * limits past the retry deadline).
 */
export type HoldReason = "room" | "auth" | "transient";

/**
 * The event was not sent, for a reason that is not the event's: the batch fails and the host module keeps it and
 * retries later. `adminHint` says what the admin must fix, when we know.
 */
export class SendFailedError extends Error {
    public constructor(
        message: string,
        public readonly adminHint?: string,
        public readonly reason: HoldReason = "transient",
    ) {
        super(message);
        this.name = "SendFailedError";
    }
}

/** True for failures that hold delivery (every record would fail alike); false for this record's own. */
export function holdsDelivery(err: unknown): err is SendFailedError {
    return err instanceof SendFailedError;
}
