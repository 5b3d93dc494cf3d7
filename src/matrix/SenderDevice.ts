/**
 * The sender's own device. Synapse keeps a transaction ID → event mapping in its database (for 24 hours) only
 * for requests made with a device; without one it remembers transaction IDs in memory, per process, for about
 * 30 minutes, so an audit event resent after a homeserver restart would be posted twice. An appservice gets a
 * device for its user without a password and keeps its rate-limit exemption by sending with the appservice
 * token and `?user_id=…&device_id=…` (the `device_id` parameter alone answers 500 in Synapse 1.163).
 *
 * The device is created idempotently at startup: first with `PUT /devices/{id}` (MSC4190, in the spec since
 * v1.17; Synapse allows it for appservices), else with the `m.login.application_service` login (creates it
 * with a fixed ID; its access token is never used). Then `whoami` must name the device, or sends go without
 * it and the log and the `account_data_audit_durable_transaction_ids` metric say so.
 */
import { Logger } from "matrix-appservice-bridge";
import type { MatrixRequester } from "./EventSender.js";

const log = new Logger("SenderDevice");

const DISPLAY_NAME = "matrix-account-data-audit";

function describe(err: unknown): string {
    const e = (typeof err === "object" && err !== null ? err : {}) as {
        statusCode?: number;
        errcode?: string;
        error?: string;
        message?: string;
    };
    return e.statusCode !== undefined
        ? `${e.statusCode} ${e.errcode ?? ""} ${e.error ?? ""}`.trim()
        : String(e.message ?? err);
}

export class SenderDevice {
    private active: string | null = null;

    public constructor(
        private readonly requester: MatrixRequester,
        public readonly sender: string,
        public readonly deviceId: string,
    ) {}

    /** The device sends use, or null while the homeserver does not take one. */
    public get current(): string | null {
        return this.active;
    }

    /** The query string that makes a request of `userId` use the device, or null. */
    public queryFor(userId: string): Record<string, string> | null {
        return this.active !== null && userId === this.sender ? { user_id: this.sender, device_id: this.active } : null;
    }

    /** Makes sure the device exists and the homeserver uses it; returns whether it does. Never throws. */
    public async ensure(): Promise<boolean> {
        this.active = null;
        const problems: string[] = [];
        const created = (await this.createWithDevicesApi(problems)) || (await this.createWithLogin(problems));
        if (created) {
            try {
                const whoami = (await this.requester.doRequest(
                    "GET",
                    "/_matrix/client/v3/account/whoami",
                    this.query(),
                    null,
                )) as {
                    device_id?: unknown;
                };
                if (whoami?.device_id === this.deviceId) {
                    this.active = this.deviceId;
                } else {
                    problems.push(
                        `whoami with device_id=${this.deviceId} answered device ${String(whoami?.device_id)}`,
                    );
                }
            } catch (err) {
                problems.push(`whoami: ${describe(err)}`);
            }
        }
        if (this.active !== null) {
            log.info(
                `Audit events are sent with device ${this.deviceId} of ${this.sender}: the homeserver keeps their ` +
                    "transaction IDs for 24 h, so a resend after its restart never posts twice",
            );
            return true;
        }
        log.warn(
            `Cannot use a device of ${this.sender} (${problems.join("; ")}). Audit events are sent without one: ` +
                "the homeserver remembers their transaction IDs only in memory (about 30 minutes, lost when it " +
                "restarts), so an event sent just before a homeserver restart can be posted twice.",
        );
        return false;
    }

    private query(): Record<string, string> {
        return { user_id: this.sender, device_id: this.deviceId };
    }

    private async createWithDevicesApi(problems: string[]): Promise<boolean> {
        try {
            await this.requester.doRequest(
                "PUT",
                `/_matrix/client/v3/devices/${encodeURIComponent(this.deviceId)}`,
                { user_id: this.sender },
                { display_name: DISPLAY_NAME },
            );
            return true;
        } catch (err) {
            problems.push(`PUT /devices: ${describe(err)}`);
            return false;
        }
    }

    private async createWithLogin(problems: string[]): Promise<boolean> {
        try {
            // Only if it does not exist: each login makes a new access token.
            await this.requester.doRequest(
                "GET",
                `/_matrix/client/v3/devices/${encodeURIComponent(this.deviceId)}`,
                { user_id: this.sender },
                null,
            );
            return true;
        } catch {
            // Not there (or not readable): log in to create it.
        }
        try {
            await this.requester.doRequest("POST", "/_matrix/client/v3/login", null, {
                type: "m.login.application_service",
                identifier: { type: "m.id.user", user: this.sender },
                device_id: this.deviceId,
                initial_device_display_name: DISPLAY_NAME,
            });
            return true;
        } catch (err) {
            problems.push(`m.login.application_service: ${describe(err)}`);
            return false;
        }
    }
}
