/**
 * The HTML (`formatted_body`) of audit messages, for auditors reading the room in Element: users and rooms as
 * matrix.to links, the type in <code>, the content as a JSON code block (folded in <details> when long). Every
 * value that comes from a user (user ID, room ID, type, content) is escaped, so hostile content shows as text.
 * Only tags of the Matrix spec's HTML subset are used.
 */
import { MAX_GAP_KEYS_LISTED } from "./Messages.js";
import type { AuditGap, AuditGapKey, UserDeactivation } from "../ModuleApi.js";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text: string): string {
    return text.replace(/[&<>"']/g, (char) => ESCAPES[char] as string);
}

/** A matrix.to link to a user or room ID (percent-encoded in the URL, escaped in the text). */
export function matrixToLink(id: string): string {
    return `<a href="https://matrix.to/#/${escapeHtml(encodeURIComponent(id))}">${escapeHtml(id)}</a>`;
}

/** Content longer than this (characters of pretty JSON, or lines) is folded. */
const FOLD_CHARACTERS = 400;
const FOLD_LINES = 12;

export function jsonBlock(prettyJson: string, size: number): string {
    const block = `<pre><code class="language-json">${escapeHtml(prettyJson)}</code></pre>`;
    const long = prettyJson.length > FOLD_CHARACTERS || prettyJson.split("\n").length > FOLD_LINES;
    return long ? `<details><summary>Content (${size} bytes)</summary>${block}</details>` : block;
}

export interface ChangeHtml {
    userId: string;
    roomId: string | null;
    type: string;
    recovered: boolean;
    /** The content shown (from jsonBlock), or a sentence in its place (already HTML). */
    contentHtml: string;
}

export function changeHtml(change: ChangeHtml): string {
    const room = change.roomId !== null ? ` in room ${matrixToLink(change.roomId)}` : "";
    const recovered = change.recovered
        ? "<p><em>Recovered after an unclean shutdown of the homeserver: the value it holds now.</em></p>"
        : "";
    return (
        `<p>${matrixToLink(change.userId)} changed their account data <code>${escapeHtml(change.type)}</code>` +
        `${room}:</p>${change.contentHtml}${recovered}`
    );
}

export function withheldHtml(size: number, keyedDigest: string | null, reason: "secret" | "policy"): string {
    const why = reason === "secret" ? "it holds encrypted secrets" : "the audit policy records metadata only";
    const keyed = keyedDigest !== null ? `, keyed digest <code>${escapeHtml(keyedDigest.slice(0, 16))}</code>` : "";
    return `<p><em>Content withheld</em> (${escapeHtml(why)}): ${size} bytes${keyed}.</p>`;
}

export function omittedHtml(size: number): string {
    return `<p><em>Content of ${size} bytes: too long to show here as well, see the plain-text body.</em></p>`;
}

function keyItem(key: AuditGapKey): string {
    const room = key.roomId !== null ? ` in room ${matrixToLink(key.roomId)}` : "";
    return `<li>${matrixToLink(key.userId)}: <code>${escapeHtml(key.type)}</code>${room}</li>`;
}

export function gapHtml(gap: AuditGap): string {
    const values = gap.lost === 1 ? "1 earlier value" : `${gap.lost} earlier values`;
    const keys = gap.keys.slice(0, MAX_GAP_KEYS_LISTED).map(keyItem);
    if (gap.keys.length > MAX_GAP_KEYS_LISTED) keys.push(`<li>${gap.keys.length - MAX_GAP_KEYS_LISTED} more</li>`);
    return (
        `<p><strong>Audit gap:</strong> up to ${values} of account data may be missing here. The homeserver ` +
        "stopped uncleanly before they could be recorded, and it keeps only the latest value of each type. " +
        `They belonged to ${gap.keys.length === 1 ? "this key" : "one or more of these keys"}; the latest value ` +
        `of each is recorded after this notice.</p><ul>${keys.join("")}</ul>`
    );
}

export function deactivationHtml(record: UserDeactivation): string {
    const by = record.byAdmin ? "by a server admin" : "by themselves";
    if (!record.deactivated) return `<p>${matrixToLink(record.userId)} was <strong>reactivated</strong> ${by}.</p>`;
    return (
        `<p>${matrixToLink(record.userId)} was <strong>deactivated</strong> ${by}. The homeserver deleted all ` +
        "their account data with it, without reporting each type: this record stands for those deletions.</p>"
    );
}
