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
    SendOptions,
    UserDeactivation,
} from "./ModuleApi.js";

/** One account-data change as the host module recorded it. */
export interface AccountDataChange extends ChangeInfo {
    readonly kind?: "change";
    /** The first seq of the digest the host module put this change in, if any. */
    readonly digestGroup?: number | null;
    readonly userId: string;
    readonly roomId: string | null;
    readonly type: string;
    readonly content: LosslessObject;
}

/** A gap notice from the host module's crash recovery. */
export interface GapRecord extends AuditGap {
    readonly kind: "gap";
}

/** Consecutive changes the host module grouped into one digest (their `digestGroup` is the first seq). */
export interface DigestRecord {
    readonly kind: "digest";
    readonly id: string;
    readonly seq: number;
    readonly lastSeq: number;
    readonly changes: readonly AccountDataChange[];
}

/** A user's deactivation or reactivation. */
export interface DeactivationRecord extends UserDeactivation {
    readonly kind: "deactivation";
}

/** What the host module delivers, in sequence order. */
export type AuditRecord = AccountDataChange | GapRecord | DeactivationRecord;

/** What the modules handle as one: a record, or a digest of changes. */
export type AuditUnit = AuditRecord | DigestRecord;

/** The last seq a unit covers. */
export function lastSeqOf(unit: AuditUnit): number {
    return unit.kind === "digest" ? unit.lastSeq : unit.seq;
}

/** A gap notice, and a digest (which holds several users' changes), run alone. */
export function runsAlone(unit: AuditUnit): boolean {
    return unit.kind === "gap" || unit.kind === "digest";
}

/** Groups consecutive changes of one digest group into a DigestRecord; other records stay as they are. */
export function toUnits(records: readonly AuditRecord[]): AuditUnit[] {
    const units: AuditUnit[] = [];
    for (const record of records) {
        const group = isChange(record) ? (record.digestGroup ?? null) : null;
        const previous = units.at(-1);
        if (group !== null && previous?.kind === "digest" && previous.changes[0]?.digestGroup === group) {
            units[units.length - 1] = {
                ...previous,
                lastSeq: record.seq,
                changes: [...previous.changes, record as AccountDataChange],
            };
        } else if (group !== null) {
            units.push({
                kind: "digest",
                id: record.id,
                seq: record.seq,
                lastSeq: record.seq,
                changes: [record as AccountDataChange],
            });
        } else {
            units.push(record);
        }
    }
    return units;
}

export function isGap(record: AuditUnit): record is GapRecord {
    return record.kind === "gap";
}

export function isChange(record: AuditUnit): record is AccountDataChange {
    return record.kind === undefined || record.kind === "change";
}

/**
 * Units with the same key are handled one after another, in order: a user's changes and (de)activations;
 * each gap notice and digest alone.
 */
export function orderingKey(unit: AuditUnit): string {
    return unit.kind === "gap" || unit.kind === "digest" ? `\u0000${unit.kind}:${unit.id}` : unit.userId;
}

interface DispatchContext {
    changeId: string;
    callbackIndex: number;
    sendsSoFar: number;
}

export class ModuleHost {
    private readonly registrations: AccountDataCallbacks[] = [];
    private readonly context = new AsyncLocalStorage<DispatchContext>();
    public readonly api: ModuleApi;

    public constructor(serverName: string, sender: EventSender) {
        const { registrations, context } = this;
        this.api = {
            serverName,
            registerAccountDataCallbacks(cbs: AccountDataCallbacks): void {
                registrations.push(cbs);
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
        return this.registrations.filter((r) => r.onAccountDataUpdated).length;
    }

    /**
     * Runs every registered callback for `unit`, in registration order; the first failure stops the unit and
     * is thrown. A digest goes to onAccountDataDigest, or change by change to onAccountDataUpdated.
     */
    public async dispatch(unit: AuditUnit): Promise<void> {
        for (const [i, callbacks] of this.registrations.entries()) {
            const run = (call: () => Promise<void> | undefined) =>
                this.context.run({ changeId: unit.id, callbackIndex: i, sendsSoFar: 0 }, async () => await call());
            if (unit.kind === "digest") {
                const { onAccountDataDigest: digest, onAccountDataUpdated: each } = callbacks;
                if (digest) await run(() => digest(unit.changes));
                else if (each) {
                    for (const c of unit.changes) {
                        await this.context.run({ changeId: c.id, callbackIndex: i, sendsSoFar: 0 }, () =>
                            each(c.userId, c.roomId, c.type, c.content, c),
                        );
                    }
                }
            } else if (isGap(unit)) {
                await run(() => callbacks.onAccountDataGap?.(unit));
            } else if (unit.kind === "deactivation") {
                await run(() => callbacks.onUserDeactivation?.(unit));
            } else {
                await run(() =>
                    callbacks.onAccountDataUpdated?.(unit.userId, unit.roomId, unit.type, unit.content, unit),
                );
            }
        }
    }
}

/** The transaction ID of a send: stable for the same change, callback and key. */
export function transactionId(changeId: string, callbackIndex: number, key: string): string {
    return `audit.${changeId}.${callbackIndex}.${key}`;
}
