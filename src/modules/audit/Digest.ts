/**
 * Digest mode's message: several consecutive changes in one event. Its body is their messages, one per line
 * (each exactly what the change alone would say); its HTML a list; its record `{"kind": "digest", "records":
 * [...]}` with each change's record. What does not fit in one event is left out in the same order as for a
 * single change: the HTML's copies of the contents, then the records', then the bodies' (each line says so).
 */
import { prettyJson, pythonDumps } from "../../json/PythonJson.js";
import type { DigestChange } from "../ModuleApi.js";
import { changeHtml, jsonBlock, omittedHtml, withheldHtml } from "./Html.js";
import { auditMessageBody, withheldText } from "./Messages.js";
import type { Decision } from "./Policy.js";
import { changeRecord, RECORD_KEY, RECORD_VERSION } from "./Record.js";

export interface DecidedChange {
    change: DigestChange;
    decision: Decision;
}

type Copies = "all" | "no_html" | "body_only" | "none";

function size(content: Record<string, unknown>): number {
    return Buffer.byteLength(JSON.stringify(content), "utf8");
}

function line({ change, decision }: DecidedChange, copies: Copies): string {
    const bytes = Buffer.byteLength(change.contentJson, "utf8");
    if (decision.level === "metadata") {
        return auditMessageBody(change.userId, change.roomId, change.type, withheldText(bytes, change.keyedDigest));
    }
    const shown =
        copies === "none" ? `[content left out of this digest to fit: ${bytes} bytes]` : pythonDumps(change.content);
    return auditMessageBody(change.userId, change.roomId, change.type, shown);
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

function build(posted: readonly DecidedChange[], copies: Copies): Record<string, unknown> {
    const withContent = copies === "all" || copies === "no_html";
    return {
        msgtype: "m.text",
        body: posted.map((d) => line(d, copies)).join("\n"),
        format: "org.matrix.custom.html",
        formatted_body: `<p>${posted.length} account-data changes:</p><ul>${posted.map((d) => item(d, copies)).join("")}</ul>`,
        [RECORD_KEY]: {
            version: RECORD_VERSION,
            kind: "digest",
            records: posted.map(({ change, decision }) =>
                changeRecord(change, decision.level === "metadata" ? "metadata" : "full", withContent),
            ),
        },
    };
}

/** The message for the posted changes of a digest, within `budget` bytes of JSON if at all possible. */
export function digestMessage(posted: readonly DecidedChange[], budget: number): Record<string, unknown> {
    for (const copies of ["all", "no_html", "body_only"] as const) {
        const message = build(posted, copies);
        if (size(message) <= budget) return message;
    }
    return build(posted, "none");
}
