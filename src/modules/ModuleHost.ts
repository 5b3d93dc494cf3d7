/**
 * Runs the registered account-data callbacks for each change, in registration order, and gives modules
 * their ModuleApi. Sends made by a callback get a transaction ID derived from the change, the callback's
 * position and the send's idempotency key, so replaying a change never posts twice.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { LosslessObject } from "../json/LosslessJson.js";
import type { EventSender } from "../matrix/EventSender.js";
import type {
    AccountDataCallbacks,
    AuditGap,
    ChangeInfo,
    EventToSend,
    ModuleApi,
    OnAccountDataGap,
    OnAccountDataUpdated,
    OnUserDeactivation,
    SendOptions,
    UserDeactivation,
} from "./ModuleApi.js";

/** One account-data change as the host module recorded it. */
export interface AccountDataChange extends ChangeInfo {
    readonly kind?: "change";
    readonly userId: string;
    readonly roomId: string | null;
    readonly type: string;
    readonly content: LosslessObject;
}

/** A gap notice from the host module's crash recovery. */
export interface GapRecord extends AuditGap {
    readonly kind: "gap";
}

/** A user's deactivation or reactivation. */
export interface DeactivationRecord extends UserDeactivation {
    readonly kind: "deactivation";
}

/** What the host module delivers, in sequence order. */
export type AuditRecord = AccountDataChange | GapRecord | DeactivationRecord;

export function isGap(record: AuditRecord): record is GapRecord {
    return record.kind === "gap";
}

export function isChange(record: AuditRecord): record is AccountDataChange {
    return record.kind === undefined || record.kind === "change";
}

/**
 * Records with the same key are handled one after another, in order: a user's changes and (de)activations;
 * each gap notice alone.
 */
export function orderingKey(record: AuditRecord): string {
    return isGap(record) ? `\u0000gap:${record.id}` : record.userId;
}

interface DispatchContext {
    changeId: string;
    callbackIndex: number;
    sendsSoFar: number;
}

export class ModuleHost {
    private readonly callbacks: OnAccountDataUpdated[] = [];
    private readonly gapCallbacks: OnAccountDataGap[] = [];
    private readonly deactivationCallbacks: OnUserDeactivation[] = [];
    private readonly context = new AsyncLocalStorage<DispatchContext>();
    public readonly api: ModuleApi;

    public constructor(serverName: string, sender: EventSender) {
        const { callbacks, gapCallbacks, deactivationCallbacks, context } = this;
        this.api = {
            serverName,
            registerAccountDataCallbacks(cbs: AccountDataCallbacks): void {
                if (cbs.onAccountDataUpdated) callbacks.push(cbs.onAccountDataUpdated);
                if (cbs.onAccountDataGap) gapCallbacks.push(cbs.onAccountDataGap);
                if (cbs.onUserDeactivation) deactivationCallbacks.push(cbs.onUserDeactivation);
            },
            async createAndSendEventIntoRoom(event: EventToSend, options?: SendOptions): Promise<string> {
                const ctx = context.getStore();
                if (!ctx) {
                    throw new Error("createAndSendEventIntoRoom can only be called from an account-data callback");
                }
                const key = options?.idempotencyKey ?? String(ctx.sendsSoFar++);
                return sender.send({
                    roomId: event.room_id,
                    sender: event.sender,
                    type: event.type,
                    content: event.content,
                    txnId: transactionId(ctx.changeId, ctx.callbackIndex, key),
                });
            },
        };
    }

    public get callbackCount(): number {
        return this.callbacks.length;
    }

    /** Runs every callback for `record`, in order; the first failure stops the record and is thrown. */
    public async dispatch(record: AuditRecord): Promise<void> {
        if (isGap(record)) {
            await this.runEach(record.id, this.gapCallbacks, (callback) => callback(record));
            return;
        }
        if (record.kind === "deactivation") {
            await this.runEach(record.id, this.deactivationCallbacks, (callback) => callback(record));
            return;
        }
        await this.runEach(record.id, this.callbacks, (callback) =>
            callback(record.userId, record.roomId, record.type, record.content, record),
        );
    }

    private async runEach<C>(recordId: string, callbacks: C[], call: (callback: C) => Promise<void>): Promise<void> {
        for (let i = 0; i < callbacks.length; i++) {
            await this.context.run({ changeId: recordId, callbackIndex: i, sendsSoFar: 0 }, () =>
                call(callbacks[i] as C),
            );
        }
    }
}

/** The transaction ID of a send: stable for the same change, callback and key. */
export function transactionId(changeId: string, callbackIndex: number, key: string): string {
    return `audit.${changeId}.${callbackIndex}.${key}`;
}
