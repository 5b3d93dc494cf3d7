/** The appservice's Prometheus metrics, on an injected registry (tests pass a fresh one). */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export class Metrics {
    public readonly batchesReceived: Counter<"result">;
    public readonly changesProcessed: Counter;
    public readonly changesRecovered: Counter;
    public readonly records: Counter<"level">;
    public readonly gapNotices: Counter;
    public readonly digests: Counter;
    public readonly durableTransactionIds: Gauge;
    public readonly roomProblems: Gauge<"problem">;
    public readonly changesFailed: Counter;
    public readonly changeSeconds: Histogram;
    public readonly lastSeq: Gauge;
    public readonly sendRetries: Counter<"reason">;
    public readonly quarantined: Counter<"cause">;
    public readonly moduleFailures: Counter;
    public readonly deliveryHeld: Gauge<"reason">;

    public constructor(public readonly registry: Registry) {
        const registers = [registry];
        this.batchesReceived = new Counter({
            name: "account_data_audit_batches_total",
            help: "Change batches received from the host module, by result (ok, failed, rejected, pending: answered as still being posted).",
            labelNames: ["result"],
            registers,
        });
        this.changesProcessed = new Counter({
            name: "account_data_audit_changes_processed_total",
            help: "Account-data changes handled by every module callback.",
            registers,
        });
        this.changesRecovered = new Counter({
            name: "account_data_audit_changes_recovered_total",
            help: "Of the changes handled, those the host module recovered after an unclean homeserver shutdown.",
            registers,
        });
        this.records = new Counter({
            name: "account_data_audit_records_total",
            help: "Changes by the level the audit policy gave them (full, metadata, none: not posted).",
            labelNames: ["level"],
            registers,
        });
        this.gapNotices = new Counter({
            name: "account_data_audit_gap_notices_total",
            help: "Gap notices handled: account-data values overwritten before they could be recorded.",
            registers,
        });
        this.digests = new Counter({
            name: "account_data_audit_digests_total",
            help: "Digests handled (digest mode: several changes in one audit event).",
            registers,
        });
        this.durableTransactionIds = new Gauge({
            name: "account_data_audit_durable_transaction_ids",
            help:
                "1 if audit events are sent with the sender's device, so the homeserver remembers their " +
                "transaction IDs across its restarts (24 h); 0 if only in its memory.",
            registers,
        });
        this.roomProblems = new Gauge({
            name: "account_data_audit_room_problems",
            help:
                "1 for each way the audit room is unsafe for an audit trail (joinable, world_readable, federated, " +
                "encrypted, redactors); see README.",
            labelNames: ["problem"],
            registers,
        });
        this.changesFailed = new Counter({
            name: "account_data_audit_changes_failed_total",
            help: "Attempts to handle a change that failed (the host module retries them).",
            registers,
        });
        this.changeSeconds = new Histogram({
            name: "account_data_audit_change_seconds",
            help: "Time to run all callbacks for one change.",
            buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
            registers,
        });
        this.lastSeq = new Gauge({
            name: "account_data_audit_last_seq",
            help: "Sequence number of the last change handled.",
            registers,
        });
        this.sendRetries = new Counter({
            name: "account_data_audit_send_retries_total",
            help: "Retried sends to the homeserver, by reason.",
            labelNames: ["reason"],
            registers,
        });
        this.quarantined = new Counter({
            name: "account_data_audit_quarantined_total",
            help:
                "Records posted as quarantine notices instead of themselves, by cause: too_large (even cut), refused " +
                "(the homeserver refused the event for what it holds), error (it could not be built).",
            labelNames: ["cause"],
            registers,
        });
        this.moduleFailures = new Counter({
            name: "account_data_audit_module_failures_total",
            help: "Records on which a module's callback failed (logged; the trail went on without that module's part).",
            registers,
        });
        this.deliveryHeld = new Gauge({
            name: "account_data_audit_delivery_held",
            help:
                "1 while delivery into the audit room is held, by reason: room (the sender may not post there), auth " +
                "(the homeserver refuses the appservice's token), transient (homeserver unreachable or failing).",
            labelNames: ["reason"],
            registers,
        });
    }
}
