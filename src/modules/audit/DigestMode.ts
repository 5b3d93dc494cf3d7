/**
 * Digest mode's message: several consecutive changes in one event. Its body is their messages, one per line
 * (each exactly what the change alone would say); its HTML a list; its record `{"kind": "digest", "records":
 * [...]}` with each change's record, compacted: after the first, a record leaves out `version` and `kind`, and
 * `prev_hash` and `prev_posted` where they point at the record before it in the digest (README, "Digest
 * mode"). What does not fit in one event is left out as for a single change: the HTML's copies of the contents
 * first, then the records'. A digest that still does not fit is split (see AuditModule).
 */
import { pythonDumpsContent } from "../../json/LazyContent.js";
import { prettyJson } from "../../json/PythonJson.js";
import type { DigestChange } from "../ModuleApi.js";
import { changeHtml, jsonBlock, omittedHtml, withheldHtml } from "./Html.js";
import { auditMessageBody, cutMessageBody, withheldText } from "./Messages.js";
import type { Decision } from "./Policy.js";
import { changeRecord, RECORD_KEY, RECORD_VERSION } from "./Record.js";

export interface DecidedChange {
    change: DigestChange;
    decision: Decision;
}

/** What a digest's event carries beyond each body line: every copy of the contents, fewer, or cut lines. */
type Copies = "all" | "no_html" | "body_only" | "cut_lines";

/** The shortest cap tried on a line before the digest is split instead. */
const MIN_LINE_CAP = 500;

function size(content: Record<string, unknown>): number {
    return Buffer.byteLength(JSON.stringify(content), "utf8");
}

/**
 * The change's message line: exactly what it would post on its own, at its level; with `lineCap`, a content
 * whose line would be longer is cut as a single change too large for one event is ("… [content cut to fit in one
 * event: showing N of M characters]").
 */
function line({ change, decision }: DecidedChange, lineCap = Infinity): string {
    if (decision.level === "metadata") {
        const bytes = Buffer.byteLength(change.contentJson, "utf8");
        return auditMessageBody(change.userId, change.roomId, change.type, withheldText(bytes, change.keyedDigest));
    }
    const dumped = pythonDumpsContent(change.content);
    const whole = auditMessageBody(change.userId, change.roomId, change.type, dumped);
    if (whole.length <= lineCap) return whole;
    const fits = (cut: string) => cut.length <= lineCap;
    return cutMessageBody(
        change.userId,
        change.roomId,
        change.type,
        dumped,
        fits,
        lineCap - (whole.length - dumped.length) - 100,
    );
}

function item({ change, decision }: DecidedChange, copies: Copies): string {
    const bytes = Buffer.byteLength(change.contentJson, "utf8");
    const contentHtml =
        decision.level === "metadata"
            ? withheldHtml(bytes, change.keyedDigest, decision.withheldSecret ? "secret" : "policy")
            : copies === "all"
              ? jsonBlock(prettyJson(change.content), bytes)
              : omittedHtml(bytes);
    return `<li>${changeHtml({ ...change, contentHtml })}</li>`;
}

/** Drops from each record after the first what the record before it in the digest says already. */
export function compactRecords(records: Record<string, unknown>[]): Record<string, unknown>[] {
    return records.map((record, i) => {
        const before = records[i - 1];
        if (!before) return record;
        const { version: _v, kind: _k, ...rest } = record;
        const posted = record.prev_posted as { seq?: unknown; hash?: unknown } | null | undefined;
        if (rest.prev_hash !== undefined && rest.prev_hash === before.hash) delete rest.prev_hash;
        if (posted && posted.seq === before.seq && posted.hash === before.hash) delete rest.prev_posted;
        return rest;
    });
}

/**
 * A digest's records as if each stood alone: undoes `compactRecords` (for readers such as `verify`).
 */
export function expandRecords(records: Record<string, unknown>[]): Record<string, unknown>[] {
    const expanded: Record<string, unknown>[] = [];
    for (const record of records) {
        const before = expanded.at(-1);
        const defaults = before
            ? {
                  version: before.version,
                  kind: "change",
                  prev_hash: before.hash,
                  prev_posted: { seq: before.seq, hash: before.hash },
              }
            : {};
        expanded.push(typeof record === "object" && record !== null ? { ...defaults, ...record } : record);
    }
    return expanded;
}

function build(posted: readonly DecidedChange[], copies: Copies, lineCap = Infinity): Record<string, unknown> {
    const withContent = copies === "all" || copies === "no_html";
    return {
        msgtype: "m.text",
        body: posted.map((decided) => line(decided, lineCap)).join("\n"),
        format: "org.matrix.custom.html",
        formatted_body: `<p>${posted.length} account-data changes:</p><ul>${posted.map((d) => item(d, copies)).join("")}</ul>`,
        [RECORD_KEY]: {
            version: RECORD_VERSION,
            kind: "digest",
            records: compactRecords(
                posted.map(({ change, decision }) =>
                    changeRecord(change, decision.level === "metadata" ? "metadata" : "full", withContent),
                ),
            ),
        },
    };
}

/**
 * The message for the posted changes of a digest within `budget` bytes of JSON: every body line whole if it can
 * be, else the longest lines cut to a cap that fits (a burst of large changes still goes out in few events; the
 * host module groups them so, see its `counted_bytes`); null if even that cannot fit (the digest is then split).
 */
export function digestMessage(posted: readonly DecidedChange[], budget: number): Record<string, unknown> | null {
    // Whole lines longer than the budget cannot fit with any copies: skip building them (the HTML copy of a
    // megabyte content would read every value of it).
    const wholeLines = posted.reduce((sum, decided) => sum + line(decided).length + 1, 0);
    for (const copies of wholeLines > budget ? [] : (["all", "no_html", "body_only"] as const)) {
        const message = build(posted, copies);
        if (size(message) <= budget) return message;
    }
    for (let cap = Math.floor(budget / posted.length); cap >= MIN_LINE_CAP; cap = Math.floor(cap * 0.8)) {
        const message = build(posted, "cut_lines", cap);
        if (size(message) <= budget) return message;
    }
    return null;
}
