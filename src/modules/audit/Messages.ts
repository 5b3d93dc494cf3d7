/**
 * The plain-text bodies of audit messages. A change recorded in full reads exactly as Synapse's example module
 * posts it:
 *   {user_id} has changed their account data for type {type} to: {json.dumps(content)}[ (in room {room_id})]
 * A change recorded as metadata is the same sentence with the content replaced by its size and keyed digest.
 */
import type { AuditGap, AuditGapKey, UserDeactivation } from "../ModuleApi.js";

/** The facts a checkpoint's message shows (its record's fields). */
export interface CheckpointFacts {
    seq: number;
    ts: number;
    hash: string | null;
}

/**
 * Characters that would let a value forge or hide text where a body is shown: line breaks and other controls
 * (a newline in a type could start a line that reads like another user's change), bidi controls and zero widths.
 */
// eslint-disable-next-line no-control-regex -- control characters are what this finds
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;
// eslint-disable-next-line no-control-regex -- the same set, to escape every one
const UNSAFE_ALL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** `text` as a JSON string literal, with every unsafe character escaped as \uXXXX (or \n, \t, …). */
export function quoted(text: string): string {
    return JSON.stringify(text).replace(UNSAFE_ALL, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** An ID or type as a body shows it: as it is, or quoted (see UNSAFE) where it holds an unsafe character. */
export function safeField(text: string): string {
    return UNSAFE.test(text) ? quoted(text) : text;
}

/**
 * The seed's sentence. A user ID, room ID or type holding a line break or another unsafe character is written as a
 * JSON string instead (the one departure from the seed's bytes: its example would let a user forge lines).
 */
export function auditMessageBody(userId: string, roomId: string | null, type: string, contentJson: string): string {
    const body = `${safeField(userId)} has changed their account data for type ${safeField(type)} to: ${contentJson}`;
    return roomId !== null ? `${body} (in room ${safeField(roomId)})` : body;
}

/** What stands in for withheld content: its size and the first 16 hex digits of its keyed digest. */
export function withheldText(size: number, keyedDigest: string | null): string {
    const keyed = keyedDigest !== null ? `, keyed digest ${keyedDigest.slice(0, 16)}` : "";
    return `[content withheld: ${size} bytes${keyed}]`;
}

/** Cuts ASCII JSON text to `length` characters without leaving half an escape sequence at the end. */
function cutJsonText(json: string, length: number): string {
    let cut = json.slice(0, Math.max(0, length)).replace(/\\u[0-9a-fA-F]{0,3}$/, "");
    const trailingBackslashes = /\\*$/.exec(cut)?.[0].length ?? 0;
    if (trailingBackslashes % 2 === 1) cut = cut.slice(0, -1);
    return cut;
}

/**
 * The message for a change whose full text does not fit: as much of the content as `fits(body)` allows, then
 * a note that it was cut and how long it was.
 */
export function cutMessageBody(
    userId: string,
    roomId: string | null,
    type: string,
    contentJson: string,
    fits: (body: string) => boolean,
    startLength: number,
): string {
    const build = (shown: string): string =>
        auditMessageBody(
            userId,
            roomId,
            type,
            `${shown}… [content cut to fit in one event: showing ${shown.length} of ${contentJson.length} characters]`,
        );
    // Escaping in the event's JSON can only grow the text, so measure and shrink until it fits.
    let shownLength = Math.max(0, startLength);
    let body = build(cutJsonText(contentJson, shownLength));
    while (!fits(body) && shownLength > 0) {
        shownLength = Math.floor(shownLength * 0.9);
        body = build(cutJsonText(contentJson, shownLength));
    }
    return body;
}

function describeKey(key: AuditGapKey): string {
    const room = key.roomId !== null ? ` in room ${safeField(key.roomId)}` : "";
    return `${safeField(key.userId)}'s account data of type ${safeField(key.type)}${room}`;
}

/** Keys named in one gap notice (each is at most a few hundred bytes; the event must stay under 64 KiB). */
export const MAX_GAP_KEYS_LISTED = 50;

const GAP_CAUSE =
    "the homeserver stopped uncleanly before they could be recorded, and it keeps only the latest value of each type";

/** The text of a gap notice: which keys, how many values at most, and where their latest values are. */
export function gapNoticeBody(gap: AuditGap): string {
    const values = gap.lost === 1 ? "1 earlier value" : `${gap.lost} earlier values`;
    const [only] = gap.keys;
    if (gap.keys.length === 1 && only) {
        const latest =
            only.latest === "recovered"
                ? "Its latest value was recovered and is recorded after this notice."
                : "It changed again after the restart; that change is recorded as usual.";
        return `Audit gap: up to ${values} of ${describeKey(only)} may be missing here: ${GAP_CAUSE}. ${latest}`;
    }
    const shown = gap.keys.slice(0, MAX_GAP_KEYS_LISTED).map(describeKey);
    if (gap.keys.length > MAX_GAP_KEYS_LISTED) shown.push(`${gap.keys.length - MAX_GAP_KEYS_LISTED} more`);
    return (
        `Audit gap: up to ${values} of account data may be missing here: ${GAP_CAUSE}. They belonged to ` +
        `one or more of: ${shown.join("; ")}. The latest value of each is recorded after this notice.`
    );
}

/** The text of a (de)activation record. */
export function deactivationBody(record: UserDeactivation): string {
    const by = record.byAdmin ? "by a server admin" : "by themselves";
    if (!record.deactivated) return `${safeField(record.userId)} was reactivated ${by}.`;
    return (
        `${safeField(record.userId)} was deactivated ${by}. The homeserver deleted all their account data with it, ` +
        "without reporting each type: this record stands for those deletions."
    );
}

/** The text of a checkpoint (README, "Checkpoints"): short, the same for every reader. */
export function checkpointBody(checkpoint: CheckpointFacts): string {
    const head = checkpoint.hash !== null ? `, chain head ${checkpoint.hash.slice(0, 16)}` : "";
    return (
        `Audit checkpoint: seq ${checkpoint.seq} at ${new Date(checkpoint.ts).toISOString()}${head}. ` +
        "The trail is alive: nothing else was recorded for the checkpoint interval."
    );
}

/** The HTML of a checkpoint (only numbers and hex in it: nothing to escape). */
export function checkpointHtml(checkpoint: CheckpointFacts): string {
    return `<p><em>${checkpointBody(checkpoint)}</em></p>`;
}
