/**
 * One record of the trail as a line of the JSONL export (README, "The JSONL export"): Elastic Common Schema field
 * names where ECS has one, so a log shipper and a SIEM understand the line without a mapping, and our record whole
 * under one namespaced object, so `verify --jsonl` checks it like an audit event. The body and the record come from
 * the same builders the audit module posts with (Record.ts, Messages.ts), never cut: a file has no 64 KiB limit.
 * Pure: the sink decides which records get a line and links them (`prevPosted`).
 */
import { pythonDumpsContent } from "../json/LazyContent.js";
import {
    auditMessageBody,
    checkpointBody,
    deactivationBody,
    gapNoticeBody,
    withheldText,
} from "../modules/audit/Messages.js";
import type { AuditPolicy } from "../modules/audit/Policy.js";
import { quarantineBody, type QuarantineFields, quarantineRecord } from "../modules/audit/Quarantine.js";
import { changeRecord, checkpointRecord, deactivationRecord, gapRecord } from "../modules/audit/Record.js";
import type { AuditRecord } from "../modules/ModuleHost.js";
import { readContent } from "../ingest/ContentReader.js";

/** The ECS version whose field names the lines use. */
export const ECS_VERSION = "8.11.0";
/** The namespaced object holding our record (README, "The audit record"). */
export const EXPORT_KEY = "matrix_account_data_audit";

export interface ExportEntry {
    body: string;
    record: Record<string, unknown>;
}

/**
 * What the room would show of `record` (its body and structured record), or null where the policy leaves it out
 * (level none). `record.prevPosted` is taken as given: the caller sets it to the previous line's record.
 */
export function exportEntry(record: AuditRecord, policy: AuditPolicy): ExportEntry | null {
    switch (record.kind) {
        case "gap":
            return { body: gapNoticeBody(record), record: gapRecord(record) };
        case "deactivation":
            return { body: deactivationBody(record), record: deactivationRecord(record) };
        case "checkpoint": {
            const facts = { seq: record.seq, ts: record.ts, hash: record.chain?.hash ?? null };
            return { body: checkpointBody(facts), record: checkpointRecord(record) };
        }
        default: {
            record = readContent(record);
            if (record.contentError !== undefined) {
                // Content the appservice could not read: quarantined, as the room shows it.
                const fields = quarantineRecord({ ...record, kind: "change" }, record.contentError);
                return { body: quarantineBody(fields as unknown as QuarantineFields), record: fields };
            }
            const decision = policy.decide(record.userId, record.roomId, record.type, record.content);
            if (decision.level === "none") return null;
            const fields = changeRecord(record, decision.level);
            const shown =
                decision.level === "full"
                    ? pythonDumpsContent(record.content)
                    : withheldText(Number(fields.content_size), record.keyedDigest);
            return { body: auditMessageBody(record.userId, record.roomId, record.type, shown), record: fields };
        }
    }
}

/** ECS `event.*` facts per kind of record. */
function eventFields(record: Record<string, unknown>): Record<string, unknown> {
    switch (record.kind) {
        case "deactivation":
            return {
                kind: "event",
                category: ["iam"],
                type: ["user", record.deactivated === true ? "deletion" : "change"],
                action: record.deactivated === true ? "user-deactivated" : "user-reactivated",
            };
        case "gap":
            // Records may be missing: something for an analyst to look at.
            return { kind: "alert", category: ["configuration"], type: ["info"], action: "audit-gap" };
        case "checkpoint":
            return { kind: "event", category: ["configuration"], type: ["info"], action: "audit-checkpoint" };
        default:
            return {
                kind: "event",
                category: ["configuration"],
                type: [record.quarantine !== undefined ? "info" : "change"],
                action: record.quarantine !== undefined ? "account-data-quarantined" : "account-data-changed",
            };
    }
}

/** The JSON line (without its newline) for an entry. */
export function ecsLine(entry: ExportEntry): string {
    const { record } = entry;
    const user = typeof record.user_id === "string" ? record.user_id : null;
    return JSON.stringify({
        "@timestamp": new Date(Number(record.ts)).toISOString(),
        ecs: { version: ECS_VERSION },
        message: entry.body,
        event: { ...eventFields(record), id: record.change_id, sequence: record.seq },
        ...(user !== null ? { user: { id: user }, related: { user: [user] } } : {}),
        [EXPORT_KEY]: record,
    });
}

/** The entry a line holds, or null if it is not one of ours. */
export function parseLine(line: string): ExportEntry | null {
    let parsed: unknown;
    try {
        parsed = JSON.parse(line);
    } catch {
        return null;
    }
    if (typeof parsed !== "object" || parsed === null) return null;
    const { message, [EXPORT_KEY]: record } = parsed as Record<string, unknown>;
    if (typeof message !== "string" || typeof record !== "object" || record === null) return null;
    return { body: message, record: record as Record<string, unknown> };
}
