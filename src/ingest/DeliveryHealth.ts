/**
 * Whether delivery into the audit room is held, and why: set when a record could not be posted for a reason
 * every record would meet (the room, the sender, the token, an unreachable homeserver; see SendErrors), cleared
 * by the next record posted. Read by /health and exported as a metric, so a held trail is seen at once.
 */
import { Logger } from "matrix-appservice-bridge";
import type { HoldReason, SendFailedError } from "../matrix/SendErrors.js";
import type { Metrics } from "../Metrics.js";

const log = new Logger("DeliveryHealth");

const REASONS: readonly HoldReason[] = ["room", "auth", "transient"];

export type DeliveryState =
    { status: "ok" } | { status: "held"; reason: HoldReason; detail: string; admin_hint: string | null; since: string };

export class DeliveryHealth {
    private state: DeliveryState = { status: "ok" };

    public constructor(
        private readonly metrics?: Pick<Metrics, "deliveryHeld">,
        private readonly now: () => number = Date.now,
    ) {
        for (const reason of REASONS) this.metrics?.deliveryHeld.set({ reason }, 0);
    }

    public held(err: SendFailedError): void {
        const since = this.state.status === "held" ? this.state.since : new Date(this.now()).toISOString();
        if (this.state.status !== "held" || this.state.reason !== err.reason) {
            log.error(`Delivery into the audit room is held (${err.reason}): ${err.message}. ${err.adminHint ?? ""}`);
        }
        this.state = {
            status: "held",
            reason: err.reason,
            detail: err.message,
            admin_hint: err.adminHint ?? null,
            since,
        };
        for (const reason of REASONS) this.metrics?.deliveryHeld.set({ reason }, reason === err.reason ? 1 : 0);
    }

    public delivered(): void {
        if (this.state.status === "ok") return;
        log.info(`Delivery into the audit room resumed (held since ${this.state.since})`);
        this.state = { status: "ok" };
        for (const reason of REASONS) this.metrics?.deliveryHeld.set({ reason }, 0);
    }

    public snapshot(): DeliveryState {
        return this.state;
    }
}
