/** The homeserver refused the event as too large (M_TOO_LARGE); sending it again cannot succeed. */
export class EventTooLargeError extends Error {
    public constructor(message: string) {
        super(message);
        this.name = "EventTooLargeError";
    }
}

/**
 * The event was not sent and this batch should fail (the host module keeps it and retries later).
 * `adminHint` says what the admin must fix, when we know.
 */
export class SendFailedError extends Error {
    public constructor(
        message: string,
        public readonly adminHint?: string,
    ) {
        super(message);
        this.name = "SendFailedError";
    }
}
