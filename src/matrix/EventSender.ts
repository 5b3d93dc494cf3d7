/**
 * Idempotent event sending with the retry rules an audit trail needs: the transaction ID is chosen by the
 * caller (derived from the change), so resending after a timeout or a crash never posts twice.
 */
import { Logger } from "matrix-appservice-bridge";
import { EventRefusedError, EventTooLargeError, SendFailedError } from "./SendErrors.js";

const log = new Logger("EventSender");

/** The one method of the bot SDK's MatrixClient we use; tests fake only this. */
export interface MatrixRequester {
    doRequest(method: string, path: string, qs: Record<string, string> | null, body: unknown): Promise<unknown>;
}

/** Which device a sender's requests use (see SenderDevice); null when none. */
export interface DeviceSelector {
    queryFor(userId: string): Record<string, string> | null;
    /** The homeserver no longer knows the device: create it again. */
    ensure(): Promise<boolean>;
}

export interface RetryPolicy {
    initialMs: number;
    maxMs: number;
    /** Give up (SendFailedError) rather than wait past this many ms after the first attempt. */
    deadlineMs: number;
}

export interface Clock {
    now(): number;
    sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
    now: () => Date.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export type RetryReason = "rate_limited" | "server_error" | "network_error" | "unknown_device";

type Outcome =
    | { kind: "retry"; reason: RetryReason; waitMs?: number; detail: string }
    | { kind: "device_lost"; detail: string }
    | { kind: "too_large"; detail: string }
    | { kind: "forbidden"; detail: string }
    | { kind: "unauthorized"; detail: string }
    | { kind: "rejected"; status: number; errcode: string | null; detail: string };

interface HttpErrorShape {
    statusCode?: number;
    errcode?: string;
    error?: string;
    retryAfterMs?: number;
    message?: string;
}

/** Sorts what the bot SDK throws: MatrixError, a raw response for non-JSON errors, or a network Error. */
export function classifySendError(err: unknown): Outcome {
    const e = (typeof err === "object" && err !== null ? err : {}) as HttpErrorShape;
    const status = typeof e.statusCode === "number" ? e.statusCode : undefined;
    const errcode = typeof e.errcode === "string" ? e.errcode : undefined;
    const detail =
        status === undefined ? String(e.message ?? err) : `${status} ${errcode ?? ""} ${e.error ?? ""}`.trim();
    if (status === undefined) {
        return { kind: "retry", reason: "network_error", detail };
    }
    if (errcode === "M_LIMIT_EXCEEDED" || status === 429) {
        return { kind: "retry", reason: "rate_limited", waitMs: e.retryAfterMs, detail };
    }
    if (errcode === "M_UNKNOWN_DEVICE") {
        return { kind: "device_lost", detail };
    }
    if (errcode === "M_TOO_LARGE" || status === 413) {
        return { kind: "too_large", detail };
    }
    // The room or the sender (not joined, no power, deactivated, no such room): every event would fail alike.
    if (errcode === "M_FORBIDDEN" || status === 403 || status === 404) {
        return { kind: "forbidden", detail };
    }
    if (status === 401) {
        return { kind: "unauthorized", detail };
    }
    if (status >= 500) {
        return { kind: "retry", reason: "server_error", detail };
    }
    // Any other 4xx (M_BAD_JSON, M_NOT_JSON, M_INVALID_PARAM, …) is about what this event holds.
    return { kind: "rejected", status, errcode: errcode ?? null, detail };
}

export interface SendRequest {
    roomId: string;
    sender: string;
    type: string;
    content: Record<string, unknown>;
    txnId: string;
}

export class EventSender {
    public constructor(
        private readonly requesterFor: (userId: string) => MatrixRequester,
        private readonly policy: RetryPolicy,
        private readonly onRetry: (reason: RetryReason) => void = () => undefined,
        private readonly clock: Clock = realClock,
        private readonly device: DeviceSelector | null = null,
    ) {}

    /** Sends once, or retries per the policy; returns the event ID. */
    public async send(req: SendRequest): Promise<string> {
        const path =
            `/_matrix/client/v3/rooms/${encodeURIComponent(req.roomId)}/send/` +
            `${encodeURIComponent(req.type)}/${encodeURIComponent(req.txnId)}`;
        const lone = findLoneSurrogate(req.content);
        if (lone !== null) {
            // Synapse reads "\ud800" back into a lone surrogate and then fails to encode the event (a 500 that no
            // retry mends): refuse it here, as the homeserver would have.
            throw new EventRefusedError(`The event would hold a lone surrogate (in ${lone})`);
        }
        const requester = this.requesterFor(req.sender);
        const started = this.clock.now();
        let backoffMs = this.policy.initialMs;
        for (let attempt = 1; ; attempt++) {
            let outcome: Outcome;
            try {
                const qs = this.device?.queryFor(req.sender) ?? null;
                const response = (await requester.doRequest("PUT", path, qs, req.content)) as { event_id?: unknown };
                if (typeof response?.event_id === "string") {
                    return response.event_id;
                }
                outcome = { kind: "retry", reason: "server_error", detail: "response without event_id" };
            } catch (err) {
                outcome = classifySendError(err);
            }
            if (outcome.kind === "device_lost") {
                // Someone deleted the sender's device: make it again (or go on without), then resend.
                log.warn(`Send ${req.txnId}: the homeserver no longer knows the sender's device (${outcome.detail})`);
                await this.device?.ensure();
                outcome = { kind: "retry", reason: "unknown_device", waitMs: 0, detail: outcome.detail };
            }
            switch (outcome.kind) {
                case "too_large":
                    throw new EventTooLargeError(`The homeserver refused the event as too large (${outcome.detail})`);
                case "forbidden":
                    throw new SendFailedError(
                        `${req.sender} may not send ${req.type} into ${req.roomId} (${outcome.detail})`,
                        `Invite ${req.sender} to ${req.roomId} and give it enough power level to send ${req.type} events.`,
                        "room",
                    );
                case "unauthorized":
                    throw new SendFailedError(
                        `The homeserver does not accept the appservice's token (${outcome.detail})`,
                        "Check that the registration file Synapse loads (app_service_config_files) is the one this appservice uses (-f).",
                        "auth",
                    );
                case "rejected":
                    throw new EventRefusedError(
                        `The homeserver refused the event (${outcome.detail})`,
                        outcome.status,
                        outcome.errcode,
                    );
                case "retry": {
                    const waitMs = outcome.waitMs ?? backoffMs;
                    backoffMs = Math.min(backoffMs * 2, this.policy.maxMs);
                    if (this.clock.now() + waitMs - started > this.policy.deadlineMs) {
                        throw new SendFailedError(
                            `Gave up sending into ${req.roomId} after ${attempt} attempts (${outcome.detail})`,
                            undefined,
                            "transient",
                        );
                    }
                    log.warn(`Send ${req.txnId} failed (${outcome.detail}); retrying in ${waitMs} ms`);
                    this.onRetry(outcome.reason);
                    await this.clock.sleep(waitMs);
                }
            }
        }
    }
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The key of the first string (or key) in `value` holding a lone surrogate, or null. Iterative: any depth. */
export function findLoneSurrogate(value: unknown): string | null {
    const stack: [string, unknown][] = [["content", value]];
    for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
        const [where, current] = item;
        if (typeof current === "string") {
            if (LONE_SURROGATE.test(current)) return where;
        } else if (typeof current === "object" && current !== null) {
            for (const [key, child] of Object.entries(current)) {
                if (LONE_SURROGATE.test(key)) return `${where} (a key)`;
                stack.push([Array.isArray(current) ? where : key, child]);
            }
        }
    }
    return null;
}
