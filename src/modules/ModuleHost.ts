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
    ChangeInfo,
    EventToSend,
    ModuleApi,
    OnAccountDataUpdated,
    SendOptions,
} from "./ModuleApi.js";

/** One account-data change as the host module recorded it. */
export interface AccountDataChange extends ChangeInfo {
    readonly userId: string;
    readonly roomId: string | null;
    readonly type: string;
    readonly content: LosslessObject;
}

interface DispatchContext {
    changeId: string;
    callbackIndex: number;
    sendsSoFar: number;
}

export class ModuleHost {
    private readonly callbacks: OnAccountDataUpdated[] = [];
    private readonly context = new AsyncLocalStorage<DispatchContext>();
    public readonly api: ModuleApi;

    public constructor(serverName: string, sender: EventSender) {
        const { callbacks, context } = this;
        this.api = {
            serverName,
            registerAccountDataCallbacks(cbs: AccountDataCallbacks): void {
                if (cbs.onAccountDataUpdated) callbacks.push(cbs.onAccountDataUpdated);
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

    /** Runs every callback for `change`, in order; the first failure stops the change and is thrown. */
    public async dispatch(change: AccountDataChange): Promise<void> {
        for (let i = 0; i < this.callbacks.length; i++) {
            const callback = this.callbacks[i] as OnAccountDataUpdated;
            await this.context.run({ changeId: change.id, callbackIndex: i, sendsSoFar: 0 }, () =>
                callback(change.userId, change.roomId, change.type, change.content, change),
            );
        }
    }
}

/** The transaction ID of a send: stable for the same change, callback and key. */
export function transactionId(changeId: string, callbackIndex: number, key: string): string {
    return `audit.${changeId}.${callbackIndex}.${key}`;
}
