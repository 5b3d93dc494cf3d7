/**
 * The built-in audit module: Synapse's example account-data module in TypeScript, and an auditor's record.
 * For every change it posts into `audit_room`, as `sender`, an m.text message whose body at level `full` is
 * byte-identical to the example's (see audit/Messages.ts), with an HTML rendering and structured data
 * (audit/Record.ts). The audit policy (audit/Policy.ts) decides the level: full, metadata (no content) or
 * none (no message). Content too large for one event is dropped from the HTML, then from the structured data,
 * then cut in the body, which says so. Gap notices from crash recovery are posted as m.notice.
 */
import { Logger } from "matrix-appservice-bridge";
import { pythonDumpsContent } from "../json/LazyContent.js";
import { prettyJson } from "../json/PythonJson.js";
import { EventRefusedError, EventTooLargeError, holdsDelivery } from "../matrix/SendErrors.js";
import { type AuditModuleConfig, parseAuditModuleConfig } from "../config/AuditModuleConfig.js";
import { changeHtml, deactivationHtml, gapHtml, jsonBlock, omittedHtml, withheldHtml } from "./audit/Html.js";
import {
    auditMessageBody,
    checkpointBody,
    checkpointHtml,
    cutMessageBody,
    deactivationBody,
    gapNoticeBody,
    withheldText,
} from "./audit/Messages.js";
import { type AuditLevel, AuditPolicy, type Decision } from "./audit/Policy.js";
import {
    type ChangeFacts,
    changeRecord,
    checkpointRecord,
    deactivationRecord,
    gapRecord,
    RECORD_KEY,
} from "./audit/Record.js";
import { type DecidedChange, digestMessage } from "./audit/DigestMode.js";
import {
    type Quarantinable,
    quarantineBody,
    quarantineHtml,
    type QuarantineFields,
    quarantineReason,
    quarantineRecord,
} from "./audit/Quarantine.js";
import type {
    AccountDataContent,
    AuditCheckpoint,
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

/** Why a record was quarantined, for the metric: the event was too large even when cut, the homeserver refused it
 * for another reason, or it could not be built (a bug). */
export type QuarantineCause = "too_large" | "refused" | "error";

export interface AuditModuleOptions {
    maxContentBytes?: number;
    /** Told the level of every change (metrics count them, `none` included). */
    onRecorded?: (level: AuditLevel) => void;
    /** Told of every record posted as a quarantine notice. */
    onQuarantined?: (cause: QuarantineCause) => void;
}

/** An event that cannot fit whatever is cut (found before sending, so nothing is sent). */
class DoesNotFitError extends EventTooLargeError {
    public constructor(message: string) {
        super(message);
        this.name = "DoesNotFitError";
    }
}

function causeOf(err: unknown): QuarantineCause {
    if (err instanceof EventTooLargeError) return "too_large";
    return err instanceof EventRefusedError ? "refused" : "error";
}

/** Lone surrogates (content may hold them) become U+FFFD in HTML: the event must be valid UTF-8. */
function wellFormed(text: string): string {
    return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
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
            onAccountDataUpdated: (userId, roomId, type, content, change) => {
                const facts = { ...change, userId, roomId, type };
                return this.guarded({ ...facts, kind: "change" }, "", () => this.logNewAccountData(facts, content));
            },
            onAccountDataGap: (gap) => this.guarded({ ...gap, kind: "gap" }, "", () => this.postGapNotice(gap)),
            onUserDeactivation: (record) =>
                this.guarded({ ...record, kind: "deactivation" }, "", () => this.postDeactivation(record)),
            onAccountDataDigest: (changes) => this.postDigest(changes),
            onAccountDataQuarantined: (change, reason) => this.quarantine({ ...change, kind: "change" }, reason, ""),
            onAuditCheckpoint: (checkpoint) => this.postCheckpoint(checkpoint),
        });
    }

    /** Whether this module posts `record` (it leaves out changes its policy gives level none). */
    public willPost(record: AuditRecord): boolean {
        return !isChange(record) || this.policy.decide(record.userId, record.roomId, record.type).level !== "none";
    }

    /**
     * Runs `post`; if it fails for what the record holds (the homeserver refused the event, or it could not be
     * built), posts the record quarantined instead, so the trail goes on. Failures that hold delivery (the room,
     * the sender, the token, an unreachable homeserver) are thrown: the batch waits and nothing is lost.
     */
    private async guarded(record: Quarantinable, key: string, post: () => Promise<void>): Promise<void> {
        try {
            await post();
        } catch (err) {
            if (holdsDelivery(err)) throw err;
            this.options.onQuarantined?.(causeOf(err));
            await this.quarantine(record, quarantineReason(err), key);
        }
    }

    /** Posts `record` as a quarantine notice (README, "Quarantined records"). */
    private async quarantine(record: Quarantinable, reason: string, key: string): Promise<void> {
        log.error(`Quarantined the record of seq ${record.seq} (${record.kind}): ${reason}`);
        const fields = quarantineRecord(record, reason);
        const shown = fields as unknown as QuarantineFields;
        try {
            await this.send(
                {
                    msgtype: "m.notice",
                    body: quarantineBody(shown),
                    format: HTML,
                    formatted_body: quarantineHtml(shown),
                    [RECORD_KEY]: fields,
                },
                `quarantine${key}`,
            );
        } catch (err) {
            if (holdsDelivery(err)) throw err;
            // Not even the notice could be posted: say so without the record (verify reports the seq as missing,
            // which it is), rather than stop the trail.
            log.error(`The quarantine notice of seq ${record.seq} was refused too: ${quarantineReason(err)}`);
            await this.send(
                {
                    msgtype: "m.notice",
                    body: `Audit record quarantined: seq ${record.seq} could not be posted, not even as a notice (${quarantineReason(err)}).`,
                },
                `quarantine-bare${key}`,
            );
        }
    }

    private async logNewAccountData(change: ChangeFacts & ChangeInfo, content: AccountDataContent): Promise<void> {
        const decision = this.policy.decide(change.userId, change.roomId, change.type, content);
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
                if (!(err instanceof EventTooLargeError) || err instanceof DoesNotFitError) throw err;
                if (budget <= MIN_CONTENT_BYTES) throw err;
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
            const built = message(
                auditMessageBody(change.userId, change.roomId, change.type, withheldText(size, change.keyedDigest)),
                withheldHtml(size, change.keyedDigest, reason),
                changeRecord(change, "metadata"),
            );
            if (encodedSize(built) > budget) throw new DoesNotFitError("the record does not fit in one event");
            return built;
        }
        const dumped = pythonDumpsContent(content);
        const body = auditMessageBody(change.userId, change.roomId, change.type, dumped);
        // Most readable first; each step leaves out more of the content's second and third copies. None can fit
        // when the body alone is over the budget: then no copy is built at all (content may be megabytes).
        const candidates =
            body.length > budget
                ? []
                : [
                      () =>
                          message(body, jsonBlock(wellFormed(prettyJson(content)), size), changeRecord(change, "full")),
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
        if (overhead > budget) {
            // The user, room and type alone (in the body, the HTML and the record) are over the budget: no cut of
            // the content helps, and sending it would only be refused. Quarantined at once (see `guarded`).
            throw new DoesNotFitError("the user, room and type alone do not fit in one event");
        }
        const cut = cutMessageBody(change.userId, change.roomId, change.type, dumped, fits, budget - overhead);
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
            decision: this.policy.decide(change.userId, change.roomId, change.type, change.content),
        }));
        for (const { decision } of decided) this.options.onRecorded?.(decision.level);
        const first = changes[0]?.seq ?? 0;
        const last = changes.at(-1)?.seq ?? first;
        // Keyed on the whole digest's seqs, not on which of its changes the policy posts: a replay under changed
        // rules finds the event already posted instead of posting its changes a second time.
        await this.postDigestPart(
            decided.filter(({ decision }) => decision.level !== "none"),
            `digest:${first}-${last}`,
        );
    }

    /**
     * Posts `posted` as one event, or, if it cannot fit, in two halves, each again as one event or split: the
     * split depends only on the digest, and each part's transaction ID on its seqs, so a replay posts the same
     * events. A single change goes as a message of its own (cut as usual if it is too large). If the homeserver
     * refuses a part for what it holds, its changes go one by one, each recorded or quarantined on its own.
     */
    private async postDigestPart(posted: readonly DecidedChange[], key: string): Promise<void> {
        const [only] = posted;
        if (!only) return;
        if (posted.length === 1) {
            await this.postSingle(only, key);
            return;
        }
        let budget = this.maxContentBytes;
        for (;;) {
            try {
                const message = digestMessage(posted, budget);
                if (message === null) break;
                await this.send(message, key);
                return;
            } catch (err) {
                if (holdsDelivery(err)) throw err;
                if (err instanceof EventTooLargeError) {
                    if (budget <= MIN_CONTENT_BYTES) break;
                    // The envelope was larger than we allowed for.
                    budget = Math.max(MIN_CONTENT_BYTES, Math.floor(budget / 2));
                    continue;
                }
                log.warn(`Digest ${key} refused (${quarantineReason(err)}): posting its changes one by one`);
                for (const one of posted) await this.postSingle(one, `digest:${one.change.seq}-${one.change.seq}`);
                return;
            }
        }
        const half = Math.ceil(posted.length / 2);
        log.info(`Digest of ${posted.length} changes does not fit one event: posting it in two parts`);
        for (const part of [posted.slice(0, half), posted.slice(half)]) {
            await this.postDigestPart(part, `digest:${part[0]?.change.seq}-${part.at(-1)?.change.seq}`);
        }
    }

    /** One change of a digest as a message of its own, quarantined if it cannot be posted. */
    private async postSingle({ change, decision }: DecidedChange, key: string): Promise<void> {
        await this.guarded({ ...change, kind: "change" }, `:${change.seq}`, () =>
            this.postChange(change, change.content, decision, key),
        );
    }

    private async postCheckpoint(checkpoint: AuditCheckpoint): Promise<void> {
        const facts = { seq: checkpoint.seq, ts: checkpoint.ts, hash: checkpoint.chain?.hash ?? null };
        await this.send(
            {
                msgtype: "m.notice",
                body: checkpointBody(facts),
                format: HTML,
                formatted_body: checkpointHtml(facts),
                [RECORD_KEY]: checkpointRecord(checkpoint),
            },
            "checkpoint",
        );
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
