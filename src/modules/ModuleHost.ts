/**
 * Runs the registered account-data callbacks for each change, in registration order, and gives modules
 * their ModuleApi. Sends made by a callback get a transaction ID derived from the change, the callback's
 * position and the send's idempotency key, so replaying a change never posts twice.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { LosslessObject } from "../json/LosslessJson.js";
import { Logger } from "matrix-appservice-bridge";
import type { EventSender } from "../matrix/EventSender.js";
import { holdsDelivery } from "../matrix/SendErrors.js";
import type {
    AccountDataCallbacks,
    AuditCheckpoint,
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
    /** Where the host module found the change: absent for its account-data callback, else "tags" or "push_rules". */
    readonly source?: string;
    readonly userId: string;
    readonly roomId: string | null;
    readonly type: string;
    readonly content: LosslessObject;
    /**
     * Why the content could not be read (it is then an empty object): the change goes to
     * onAccountDataQuarantined instead of onAccountDataUpdated.
     */
    readonly contentError?: string;
    /** The content's size in bytes where it did not come with the change (see contentError). */
    readonly contentSize?: number;
}

/** A gap notice from the host module's crash recovery. */
export interface GapRecord extends AuditGap {
    readonly kind: "gap";
}

/** Changes the host module grouped into one digest (their `digestGroup` is the first seq). */
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

/** A checkpoint: no record was written for the host module's checkpoint interval. */
export interface CheckpointRecord extends AuditCheckpoint {
    readonly kind: "checkpoint";
}

/** What the host module delivers, in sequence order. */
export type AuditRecord = AccountDataChange | GapRecord | DeactivationRecord | CheckpointRecord;

/** What the modules handle as one: a record, or a digest of changes. */
export type AuditUnit = AuditRecord | DigestRecord;

/** The last seq a unit covers. */
export function lastSeqOf(unit: AuditUnit): number {
    return unit.kind === "digest" ? unit.lastSeq : unit.seq;
}

/** A gap notice or a checkpoint runs alone: after everything before it, before anything after it. */
export function runsAlone(unit: AuditUnit): boolean {
    return unit.kind === "gap" || unit.kind === "checkpoint";
}

/**
 * Groups the changes of each digest group (the host module's `digestGroup`, the group's first seq) into a
 * DigestRecord, in seq order; other records stay as they are. A group's changes need not be consecutive: the
 * host module groups each lane of users on its own, so groups interleave. Units come in order of their first seq.
 */
export function toUnits(records: readonly AuditRecord[]): AuditUnit[] {
    const units: (AuditRecord | AccountDataChange[])[] = [];
    const groups = new Map<number, AccountDataChange[]>();
    for (const record of records) {
        const group = isChange(record) ? (record.digestGroup ?? null) : null;
        if (group === null || !isChange(record)) {
            units.push(record);
            continue;
        }
        const members = groups.get(group);
        if (members) {
            members.push(record);
        } else {
            groups.set(group, [record]);
            units.push(groups.get(group) as AccountDataChange[]);
        }
    }
    return units.map((unit) => (Array.isArray(unit) ? digestOf(unit) : unit));
}

function digestOf(changes: AccountDataChange[]): DigestRecord {
    const first = changes[0] as AccountDataChange;
    return {
        kind: "digest",
        id: first.id,
        seq: first.seq,
        lastSeq: (changes.at(-1) as AccountDataChange).seq,
        changes,
    };
}

export function isGap(record: AuditUnit): record is GapRecord {
    return record.kind === "gap";
}

export function isChange(record: AuditUnit): record is AccountDataChange {
    return record.kind === undefined || record.kind === "change";
}

/**
 * Units that share a key are handled one after another, in seq order: a user's changes and (de)activations,
 * and a digest with each of its users' other units. A gap notice has no key: it runs alone.
 */
export function orderingKeys(unit: AuditUnit): string[] {
    if (unit.kind === "gap" || unit.kind === "checkpoint") return [];
    if (unit.kind === "digest") return [...new Set(unit.changes.map((c) => c.userId))];
    return [unit.userId];
}

const log = new Logger("ModuleHost");

interface DispatchContext {
    changeId: string;
    callbackIndex: number;
    sendsSoFar: number;
}

export class ModuleHost {
    private readonly registrations: AccountDataCallbacks[] = [];
    private readonly context = new AsyncLocalStorage<DispatchContext>();
    public readonly api: ModuleApi;

    public constructor(
        serverName: string,
        sender: EventSender,
        /** Told of a module's failure on one record (logged here; the trail goes on). */
        private readonly onModuleFailure: (unit: AuditUnit, err: unknown) => void = () => undefined,
    ) {
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

    private onModuleError(unit: AuditUnit, err: unknown): void {
        log.error(`A module failed on the record of seq ${unit.seq}; the trail goes on without its part:`, err);
        this.onModuleFailure(unit, err);
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
            const run = (id: string, call: () => Promise<void> | undefined) =>
                this.context.run({ changeId: id, callbackIndex: i, sendsSoFar: 0 }, async () => {
                    try {
                        await call();
                    } catch (err) {
                        // Only what every record would meet holds delivery; a module's failure on this record alone
                        // must not stop the trail for everyone (the audit module quarantines its own first).
                        if (holdsDelivery(err)) throw err;
                        this.onModuleError(unit, err);
                    }
                });
            const single = (c: AccountDataChange) =>
                run(c.id, () =>
                    c.contentError !== undefined
                        ? callbacks.onAccountDataQuarantined?.(c, c.contentError)
                        : callbacks.onAccountDataUpdated?.(c.userId, c.roomId, c.type, c.content, c),
                );
            if (unit.kind === "digest") {
                const { onAccountDataDigest: digest } = callbacks;
                // A change that could not be read goes alone, so the digest falls back to one change at a time.
                if (digest && unit.changes.every((c) => c.contentError === undefined)) {
                    await run(unit.id, () => digest(unit.changes));
                } else {
                    for (const c of unit.changes) await single(c);
                }
            } else if (isGap(unit)) {
                await run(unit.id, () => callbacks.onAccountDataGap?.(unit));
            } else if (unit.kind === "deactivation") {
                await run(unit.id, () => callbacks.onUserDeactivation?.(unit));
            } else if (unit.kind === "checkpoint") {
                await run(unit.id, () => callbacks.onAuditCheckpoint?.(unit));
            } else {
                await single(unit);
            }
        }
    }
}

/** The transaction ID of a send: stable for the same change, callback and key. */
export function transactionId(changeId: string, callbackIndex: number, key: string): string {
    return `audit.${changeId}.${callbackIndex}.${key}`;
}
