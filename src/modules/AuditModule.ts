/**
 * The built-in audit module: Synapse's example account-data module in TypeScript, and an auditor's record.
 * For every change it posts into `audit_room`, as `sender`, an m.text message whose body at level `full` is
 * byte-identical to the example's (see audit/Messages.ts), with an HTML rendering and structured data
 * (audit/Record.ts). The audit policy (audit/Policy.ts) decides the level: full, metadata (no content) or
 * none (no message). Content too large for one event is dropped from the HTML, then from the structured data,
 * then cut in the body, which says so. Gap notices from crash recovery are posted as m.notice.
 */
import { Logger } from "matrix-appservice-bridge";
import { prettyJson, pythonDumps } from "../json/PythonJson.js";
import { EventTooLargeError } from "../matrix/SendErrors.js";
import { type AuditModuleConfig, parseAuditModuleConfig } from "./AuditModuleConfig.js";
import { changeHtml, deactivationHtml, gapHtml, jsonBlock, omittedHtml, withheldHtml } from "./audit/Html.js";
import { auditMessageBody, cutMessageBody, deactivationBody, gapNoticeBody, withheldText } from "./audit/Messages.js";
import { type AuditLevel, AuditPolicy, type Decision } from "./audit/Policy.js";
import { type ChangeFacts, changeRecord, deactivationRecord, gapRecord, RECORD_KEY } from "./audit/Record.js";
import { type DecidedChange, digestMessage } from "./audit/Digest.js";
import type {
    AccountDataContent,
    AuditGap,
    ChangeInfo,
    DigestChange,
    ModuleApi,
    UserDeactivation,
} from "./ModuleApi.js";
import { type AuditRecord, isChange } from "./ModuleHost.js";

export { auditMessageBody, gapNoticeBody } from "./audit/Messages.js";

const log = new Logger("AuditModule");

/**
 * Budget for the JSON of the message content. Synapse caps a whole event (with its signatures, hashes and
 * references) at 65,536 bytes; this leaves room for that envelope.
 */
export const DEFAULT_MAX_CONTENT_BYTES = 60_000;
export const MIN_CONTENT_BYTES = 2_000;

const HTML = "org.matrix.custom.html";

export interface AuditModuleOptions {
    maxContentBytes?: number;
    /** Told the level of every change (metrics count them, `none` included). */
    onRecorded?: (level: AuditLevel) => void;
}

function encodedSize(content: Record<string, unknown>): number {
    return Buffer.byteLength(JSON.stringify(content), "utf8");
}

export class AuditModule {
    private readonly policy: AuditPolicy;
    private readonly maxContentBytes: number;

    public static parseConfig(raw: unknown): AuditModuleConfig {
        return parseAuditModuleConfig(raw);
    }

    public constructor(
        private readonly config: AuditModuleConfig,
        private readonly api: ModuleApi,
        private readonly options: AuditModuleOptions = {},
    ) {
        this.policy = new AuditPolicy(config.audit);
        this.maxContentBytes = options.maxContentBytes ?? DEFAULT_MAX_CONTENT_BYTES;
        api.registerAccountDataCallbacks({
            onAccountDataUpdated: (userId, roomId, type, content, change) =>
                this.logNewAccountData({ ...change, userId, roomId, type }, content),
            onAccountDataGap: (gap) => this.postGapNotice(gap),
            onUserDeactivation: (record) => this.postDeactivation(record),
            onAccountDataDigest: (changes) => this.postDigest(changes),
        });
    }

    /** Whether this module posts `record` (it leaves out changes its policy gives level none). */
    public willPost(record: AuditRecord): boolean {
        return !isChange(record) || this.policy.decide(record.userId, record.roomId, record.type).level !== "none";
    }

    private async logNewAccountData(change: ChangeFacts & ChangeInfo, content: AccountDataContent): Promise<void> {
        const decision = this.policy.decide(change.userId, change.roomId, change.type);
        this.options.onRecorded?.(decision.level);
        if (decision.level === "none") return;
        await this.postChange(change, content, decision, "audit");
    }

    private async postChange(
        change: ChangeFacts,
        content: AccountDataContent,
        decision: Decision,
        idempotencyKey: string,
    ): Promise<void> {
        let budget = this.maxContentBytes;
        for (;;) {
            try {
                await this.send(this.changeMessage(change, content, decision, budget), idempotencyKey);
                return;
            } catch (err) {
                if (!(err instanceof EventTooLargeError) || budget <= MIN_CONTENT_BYTES) throw err;
                // The envelope was larger than we allowed for: cut harder, a bounded number of times.
                budget = Math.max(MIN_CONTENT_BYTES, Math.floor(budget / 2));
                log.warn(`Audit message for ${change.userId} ${change.type} too large; cutting to ${budget} bytes`);
            }
        }
    }

    /** The message content for a change, within `budget` bytes of JSON. */
    private changeMessage(
        change: ChangeFacts,
        content: AccountDataContent,
        decision: Decision,
        budget: number,
    ): Record<string, unknown> {
        const size = Buffer.byteLength(change.contentJson, "utf8");
        const message = (body: string, contentHtml: string, record: Record<string, unknown>) => ({
            msgtype: "m.text",
            body,
            format: HTML,
            formatted_body: changeHtml({ ...change, contentHtml }),
            [RECORD_KEY]: record,
        });
        if (decision.level === "metadata") {
            const reason = decision.withheldSecret ? "secret" : "policy";
            return message(
                auditMessageBody(change.userId, change.roomId, change.type, withheldText(size, change.keyedDigest)),
                withheldHtml(size, change.keyedDigest, reason),
                changeRecord(change, "metadata"),
            );
        }
        const body = auditMessageBody(change.userId, change.roomId, change.type, pythonDumps(content));
        // Most readable first; each step leaves out more of the content's second and third copies.
        const candidates = [
            () => message(body, jsonBlock(prettyJson(content), size), changeRecord(change, "full")),
            () => message(body, omittedHtml(size), changeRecord(change, "full")),
            () => message(body, omittedHtml(size), changeRecord(change, "full", false)),
        ];
        for (const candidate of candidates) {
            const built = candidate();
            if (encodedSize(built) <= budget) return built;
        }
        const record = changeRecord(change, "full", false);
        const fits = (cut: string) => encodedSize(message(cut, omittedHtml(size), record)) <= budget;
        const overhead = encodedSize(message("", omittedHtml(size), record));
        const cut = cutMessageBody(
            change.userId,
            change.roomId,
            change.type,
            pythonDumps(content),
            fits,
            budget - overhead,
        );
        return message(cut, omittedHtml(size), record);
    }

    private async postGapNotice(gap: AuditGap): Promise<void> {
        await this.send(
            {
                msgtype: "m.notice",
                body: gapNoticeBody(gap),
                format: HTML,
                formatted_body: gapHtml(gap),
                [RECORD_KEY]: gapRecord(gap),
            },
            "gap",
        );
    }

    /** Digest mode: the posted changes of a digest in one message (README, "Digest mode"). */
    private async postDigest(changes: readonly DigestChange[]): Promise<void> {
        const decided = changes.map((change) => ({
            change,
            decision: this.policy.decide(change.userId, change.roomId, change.type),
        }));
        for (const { decision } of decided) this.options.onRecorded?.(decision.level);
        await this.postDigestPart(decided.filter(({ decision }) => decision.level !== "none"));
    }

    /**
     * Posts `posted` as one event, or, if it cannot fit, in two halves, each again as one event or split: the
     * split depends only on the digest, and each part's transaction ID on its first change, so a replay posts
     * the same events. A single change goes as a message of its own (cut as usual if it is too large).
     */
    private async postDigestPart(posted: readonly DecidedChange[]): Promise<void> {
        const [only] = posted;
        if (!only) return;
        if (posted.length === 1) {
            await this.postChange(only.change, only.change.content, only.decision, `digest:${only.change.seq}`);
            return;
        }
        let budget = this.maxContentBytes;
        for (;;) {
            const message = digestMessage(posted, budget);
            if (message === null) break;
            try {
                await this.send(message, `digest:${only.change.seq}`);
                return;
            } catch (err) {
                if (!(err instanceof EventTooLargeError) || budget <= MIN_CONTENT_BYTES) throw err;
                // The envelope was larger than we allowed for.
                budget = Math.max(MIN_CONTENT_BYTES, Math.floor(budget / 2));
            }
        }
        const half = Math.ceil(posted.length / 2);
        log.info(`Digest of ${posted.length} changes does not fit one event: posting it in two parts`);
        await this.postDigestPart(posted.slice(0, half));
        await this.postDigestPart(posted.slice(half));
    }

    private async postDeactivation(record: UserDeactivation): Promise<void> {
        await this.send(
            {
                msgtype: "m.notice",
                body: deactivationBody(record),
                format: HTML,
                formatted_body: deactivationHtml(record),
                [RECORD_KEY]: deactivationRecord(record),
            },
            "deactivation",
        );
    }

    private send(content: Record<string, unknown>, idempotencyKey: string): Promise<string> {
        return this.api.createAndSendEventIntoRoom(
            { room_id: this.config.audit_room, sender: this.config.sender, type: "m.room.message", content },
            // The same key for every form of the message: whichever the homeserver accepted first is the one a
            // replay finds, so a change is never posted twice.
            { idempotencyKey },
        );
    }
}
