/**
 * Whether delivery into the audit room is held, and why: set when a record could not be posted for a reason
 * every record would meet (the room, the sender, the token, an unreachable homeserver; see SendErrors), cleared
 * by the next record posted. Read by /health and exported as a metric, so a held trail is seen at once.
 *
 * Also whether batches from the host module stopped arriving ("stalled"): the host module refused for a token
 * mismatch (every batch would be), or no batch for longer than its checkpoints allow. The host module writes a
 * checkpoint when it wrote nothing for `checkpoint_interval_seconds` (it sends the interval in every batch and
 * in its answer to the startup wake), so with delivery working a batch arrives at least that often; after
 * 2 × the interval + 60 s without one, something between the host module and here has stopped. Before the
 * first batch or wake answer the host module's default interval (1 h) is assumed.
 */
import { Logger } from "matrix-appservice-bridge";
import type { HoldReason, SendFailedError } from "../matrix/SendErrors.js";
import type { Metrics } from "../Metrics.js";

const log = new Logger("DeliveryHealth");

export type StallReason = "token_mismatch" | "no_batches";
const REASONS: readonly (HoldReason | StallReason)[] = ["room", "auth", "transient", "token_mismatch", "no_batches"];

/** The host module's default checkpoint_interval_seconds, assumed until it says its own. */
export const DEFAULT_CHECKPOINT_INTERVAL_SECONDS = 3600;
/** Slack on top of 2 × the interval: the host module checks for idleness up to a minute late. */
const STALL_SLACK_MS = 60_000;

export const TOKEN_MISMATCH =
    "token mismatch: the host module's token (registration hs_token / its `token` config) is not this " +
    "appservice's ingest.token/hs_token";

export type DeliveryState =
    | { status: "ok" }
    | { status: "held"; reason: HoldReason; detail: string; admin_hint: string | null; since: string }
    | { status: "stalled"; reason: StallReason; detail: string; admin_hint: string; since: string };

/** When batches last arrived and what the host module said about its checkpoints (for /health). */
export interface IngestState {
    last_batch_at: string | null;
    checkpoint_interval_seconds: number;
    interval_from_host: boolean;
}

export class DeliveryHealth {
    private state: DeliveryState = { status: "ok" };
    private readonly startedAt: number;
    private lastBatchAt: number | null = null;
    private tokenRefusedAt: number | null = null;
    private intervalSeconds: number | null = null;
    private stallLogged = false;

    public constructor(
        private readonly metrics?: Pick<Metrics, "deliveryHeld">,
        private readonly now: () => number = Date.now,
    ) {
        this.startedAt = now();
        for (const reason of REASONS) this.metrics?.deliveryHeld.set({ reason }, 0);
    }

    /** A batch passed the token check (`interval`: its checkpoint_interval_seconds, if it had one). */
    public batchArrived(interval: number | null = null): void {
        this.lastBatchAt = this.now();
        this.tokenRefusedAt = null;
        this.hostInterval(interval);
        if (this.stallLogged) log.info("Batches from the host module arrive again");
        this.stallLogged = false;
    }

    /** What the host module said its checkpoint interval is (in a batch or its answer to the wake). */
    public hostInterval(interval: number | null): void {
        if (interval !== null && interval > 0) this.intervalSeconds = interval;
    }

    /** A request on the ingest route was refused for its token (the guard logs it). */
    public tokenRefused(): void {
        this.tokenRefusedAt ??= this.now();
    }

    public ingest(): IngestState {
        return {
            last_batch_at: this.lastBatchAt === null ? null : new Date(this.lastBatchAt).toISOString(),
            checkpoint_interval_seconds: this.intervalSeconds ?? DEFAULT_CHECKPOINT_INTERVAL_SECONDS,
            interval_from_host: this.intervalSeconds !== null,
        };
    }

    /** Whether batches stopped arriving, and why (null: they arrive as checkpoints say they should). */
    private stall(): DeliveryState | null {
        if (this.tokenRefusedAt !== null) {
            return {
                status: "stalled",
                reason: "token_mismatch",
                detail: `The host module's batches are refused: ${TOKEN_MISMATCH}`,
                admin_hint:
                    "Make the host module's `token` (or the hs_token of its `registration_file`) equal to this " +
                    "appservice's ingest.token (or, without one, its registration's hs_token)",
                since: new Date(this.tokenRefusedAt).toISOString(),
            };
        }
        const interval = this.intervalSeconds ?? DEFAULT_CHECKPOINT_INTERVAL_SECONDS;
        const last = this.lastBatchAt ?? this.startedAt;
        const limitMs = 2 * interval * 1000 + STALL_SLACK_MS;
        if (this.now() - last <= limitMs) return null;
        return {
            status: "stalled",
            reason: "no_batches",
            detail:
                `No batch from the host module for ${Math.round((this.now() - last) / 1000)} s ` +
                `(${this.lastBatchAt === null ? "since this appservice started" : "since the last one"}), while its ` +
                `checkpoints (every ${interval} s when idle) say one is due at least every ${interval} s`,
            admin_hint:
                "Check Synapse's log for the host module's delivery warnings, its delivery_instance, and " +
                "GET /_synapse/client/account_data_audit/v1/health on any Synapse instance",
            since: new Date(last + limitMs).toISOString(),
        };
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

    /** Held (the audit room) first, then stalled (the host module's batches), else ok; updates the metric. */
    public snapshot(): DeliveryState {
        const state = this.state.status === "held" ? this.state : (this.stall() ?? this.state);
        if (this.state.status !== "held") {
            const reason = state.status === "stalled" ? state.reason : null;
            if (reason === "no_batches" && !this.stallLogged)
                log.error(`Delivery stalled: ${(state as { detail: string }).detail}`);
            this.stallLogged = reason === "no_batches";
            for (const r of ["token_mismatch", "no_batches"] as const) {
                this.metrics?.deliveryHeld.set({ reason: r }, r === reason ? 1 : 0);
            }
        }
        return state;
    }
}
