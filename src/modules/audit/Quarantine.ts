/**
 * Quarantined records: a record that could not be posted as itself (the homeserver refused its event for what
 * it holds, or it could not be built at all) is posted in its place as an m.notice saying what is safe to say:
 * who, which type and room, the content's size and keyed digest (never the content), its seq, and why. Its
 * structured record keeps every field the hash chain covers, so `verify` checks it like any other, and the
 * trail goes on behind it.
 *
 * The body and HTML show each ID and type quoted as JSON strings (control characters escaped, so a newline in a
 * room ID cannot forge a second line) and cut to MAX_SHOWN characters; the record holds them whole.
 */
import type { AuditGap, UserDeactivation } from "../ModuleApi.js";
import { escapeHtml } from "./Html.js";
import { quoted } from "./Messages.js";
import { type ChangeFacts, changeRecord, deactivationRecord, gapRecord } from "./Record.js";

/** What can be quarantined: a change, a gap notice or a (de)activation. */
export type Quarantinable =
    | (ChangeFacts & { kind: "change"; contentSize?: number })
    | (AuditGap & { kind: "gap" })
    | (UserDeactivation & { kind: "deactivation" });

/** Characters of an ID or type shown in the body and HTML (the record has them whole). */
export const MAX_SHOWN = 200;
/** Characters of the reason kept (it may quote the homeserver's error text). */
const MAX_REASON = 300;

/** `text` as a JSON string literal, cut to MAX_SHOWN characters with its full length said. */
export function shown(text: string): string {
    const chars = Array.from(text);
    if (chars.length <= MAX_SHOWN) return quoted(text);
    return `${quoted(chars.slice(0, MAX_SHOWN).join(""))}… (${chars.length} characters)`;
}

/** A reason safe to put in the room: one line, bounded, with lone surrogates replaced. */
export function quarantineReason(err: unknown): string {
    const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    // eslint-disable-next-line no-control-regex -- control characters are what this removes
    const line = text.replace(/[\u0000-\u001f\u007f]+/g, " ");
    const cut = Array.from(line).slice(0, MAX_REASON).join("");
    // Lone surrogates only (the event must be valid UTF-8); a pair is a character like any other.
    return cut.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/** The structured record of a quarantined record: the usual one without anything that could not be posted. */
export function quarantineRecord(record: Quarantinable, reason: string): Record<string, unknown> {
    const quarantine = { reason };
    if (record.kind === "gap") {
        return { ...gapRecord({ ...record, keys: [] }), keys_total: record.keys.length, quarantine };
    }
    if (record.kind === "deactivation") return { ...deactivationRecord(record), quarantine };
    const base = changeRecord(record, "metadata");
    const size = record.contentSize ?? base.content_size;
    return { ...base, level: "quarantined", content_size: size, quarantine };
}

/** The fields of a quarantine record that its body is made of (verify rebuilds the body from them). */
export interface QuarantineFields {
    kind: string;
    seq: number;
    user_id?: unknown;
    room_id?: unknown;
    type?: unknown;
    content_size?: unknown;
    keyed_digest?: unknown;
    quarantine: { reason: string };
}

function what(fields: QuarantineFields): string {
    if (fields.kind === "gap") return "a gap notice";
    if (fields.kind === "deactivation") return `the (de)activation of ${shown(String(fields.user_id))}`;
    const room = typeof fields.room_id === "string" ? ` in room ${shown(fields.room_id)}` : "";
    return `a change by ${shown(String(fields.user_id))} of type ${shown(String(fields.type))}${room}`;
}

function contentFacts(fields: QuarantineFields): string {
    if (fields.kind !== "change") return "";
    const keyed = typeof fields.keyed_digest === "string" ? `, keyed digest ${fields.keyed_digest.slice(0, 16)}` : "";
    return ` Content withheld: ${Number(fields.content_size)} bytes${keyed}.`;
}

/** The m.notice body of a quarantined record. */
export function quarantineBody(fields: QuarantineFields): string {
    return (
        `Audit record quarantined: seq ${fields.seq}, ${what(fields)}, could not be posted as a record ` +
        `(${fields.quarantine.reason}).${contentFacts(fields)}`
    );
}

export function quarantineHtml(fields: QuarantineFields): string {
    return (
        `<p><strong>Audit record quarantined:</strong> seq ${fields.seq}, ${escapeHtml(what(fields))}, could not ` +
        `be posted as a record (<code>${escapeHtml(fields.quarantine.reason)}</code>).` +
        `${escapeHtml(contentFacts(fields))}</p>`
    );
}
