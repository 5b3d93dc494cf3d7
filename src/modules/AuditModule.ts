/**
 * The built-in audit module: Synapse's example account-data module in TypeScript. For every change it
 * posts into `audit_room`, as `sender`, an m.text message whose body is byte-identical to the example's:
 *   {user_id} has changed their account data for type {type} to: {json.dumps(content)}[ (in room {room_id})]
 * Content too large for one event is cut to fit, and the message says so. Where crash recovery found that
 * values were overwritten before they could be recorded, it posts an m.notice saying so (a gap notice).
 */
import { Logger } from "matrix-appservice-bridge";
import { pythonDumps } from "../json/PythonJson.js";
import { EventTooLargeError } from "../matrix/SendErrors.js";
import { type AuditModuleConfig, parseAuditModuleConfig } from "./AuditModuleConfig.js";
import type { AccountDataContent, AuditGap, AuditGapKey, ModuleApi } from "./ModuleApi.js";

const log = new Logger("AuditModule");

/**
 * Budget for the JSON of the message content. Synapse caps a whole event (with its signatures, hashes and
 * references) at 65,536 bytes; this leaves room for that envelope.
 */
export const DEFAULT_MAX_CONTENT_BYTES = 60_000;
const MIN_CONTENT_BYTES = 2_000;

export function auditMessageBody(userId: string, roomId: string | null, type: string, contentJson: string): string {
    const body = `${userId} has changed their account data for type ${type} to: ${contentJson}`;
    return roomId !== null ? `${body} (in room ${roomId})` : body;
}

function messageContent(body: string): Record<string, unknown> {
    return { msgtype: "m.text", body };
}

function describeKey(key: AuditGapKey): string {
    const room = key.roomId !== null ? ` in room ${key.roomId}` : "";
    return `${key.userId}'s account data of type ${key.type}${room}`;
}

/** Keys named in one gap notice (each is at most a few hundred bytes; the event must stay under 64 KiB). */
const MAX_GAP_KEYS_LISTED = 50;

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
    const keys = shown.join("; ");
    return (
        `Audit gap: up to ${values} of account data may be missing here: ${GAP_CAUSE}. They belonged to ` +
        `one or more of: ${keys}. The latest value of each is recorded after this notice.`
    );
}

function encodedSize(content: Record<string, unknown>): number {
    return Buffer.byteLength(JSON.stringify(content), "utf8");
}

/** Cuts ASCII JSON text to `length` characters without leaving half an escape sequence at the end. */
function cutJsonText(json: string, length: number): string {
    let cut = json.slice(0, Math.max(0, length)).replace(/\\u[0-9a-fA-F]{0,3}$/, "");
    const trailingBackslashes = /\\*$/.exec(cut)?.[0].length ?? 0;
    if (trailingBackslashes % 2 === 1) cut = cut.slice(0, -1);
    return cut;
}

/**
 * The message for a change whose full text does not fit in `maxBytes`: as much of the content as fits,
 * then a note that it was cut and how long it was.
 */
export function cutMessageBody(
    userId: string,
    roomId: string | null,
    type: string,
    contentJson: string,
    maxBytes: number,
): string {
    const build = (shown: string): string =>
        auditMessageBody(
            userId,
            roomId,
            type,
            `${shown}… [content cut to fit in one event: showing ${shown.length} of ${contentJson.length} characters]`,
        );
    // Escaping in the event's JSON can only grow the text, so measure and shrink until it fits.
    let shownLength = Math.max(0, maxBytes - encodedSize(messageContent(build(""))));
    let body = build(cutJsonText(contentJson, shownLength));
    while (encodedSize(messageContent(body)) > maxBytes && shownLength > 0) {
        shownLength = Math.floor(shownLength * 0.9);
        body = build(cutJsonText(contentJson, shownLength));
    }
    return body;
}

export class AuditModule {
    public static parseConfig(raw: unknown): AuditModuleConfig {
        return parseAuditModuleConfig(raw);
    }

    public constructor(
        private readonly config: AuditModuleConfig,
        private readonly api: ModuleApi,
        private readonly maxContentBytes = DEFAULT_MAX_CONTENT_BYTES,
    ) {
        api.registerAccountDataCallbacks({
            onAccountDataUpdated: (userId, roomId, type, content) =>
                this.logNewAccountData(userId, roomId, type, content),
            onAccountDataGap: (gap) => this.postGapNotice(gap),
        });
    }

    private async postGapNotice(gap: AuditGap): Promise<void> {
        await this.api.createAndSendEventIntoRoom(
            {
                room_id: this.config.audit_room,
                sender: this.config.sender,
                type: "m.room.message",
                content: { msgtype: "m.notice", body: gapNoticeBody(gap) },
            },
            { idempotencyKey: "gap" },
        );
    }

    private async logNewAccountData(
        userId: string,
        roomId: string | null,
        accountDataType: string,
        content: AccountDataContent,
    ): Promise<void> {
        const contentJson = pythonDumps(content);
        let body = auditMessageBody(userId, roomId, accountDataType, contentJson);
        let budget = this.maxContentBytes;
        if (encodedSize(messageContent(body)) > budget) {
            body = cutMessageBody(userId, roomId, accountDataType, contentJson, budget);
        }
        for (;;) {
            try {
                await this.send(body);
                return;
            } catch (err) {
                if (!(err instanceof EventTooLargeError) || budget <= MIN_CONTENT_BYTES) throw err;
                // The envelope was larger than we allowed for: cut harder, a bounded number of times.
                budget = Math.max(MIN_CONTENT_BYTES, Math.floor(budget / 2));
                log.warn(`Audit message for ${userId} ${accountDataType} too large; cutting to ${budget} bytes`);
                body = cutMessageBody(userId, roomId, accountDataType, contentJson, budget);
            }
        }
    }

    private send(body: string): Promise<string> {
        return this.api.createAndSendEventIntoRoom(
            {
                room_id: this.config.audit_room,
                sender: this.config.sender,
                type: "m.room.message",
                content: messageContent(body),
            },
            // The same key for the full and the cut message: whichever the homeserver accepted first is
            // the one a replay finds, so a change is never posted twice.
            { idempotencyKey: "audit" },
        );
    }
}
