/**
 * A TypeScript mirror of the account-data part of Synapse's module API. A module is a class constructed
 * with `(config, api)`, with a static `parseConfig(raw)` that throws ConfigError; it registers callbacks
 * with `api.registerAccountDataCallbacks`. As in Synapse, every registered callback runs, in registration
 * order, for every change.
 */
import type { LosslessObject } from "../json/LosslessJson.js";

/**
 * The new content of the account data, as the user stored it. It keeps Python's view of the value (key
 * order, `1.0` vs `1`, integers beyond 2^53): `pythonJsonDumps(content)` is `json.dumps(content)`, and
 * `toPlainJson(content)` gives ordinary JavaScript values when exactness does not matter.
 */
export type AccountDataContent = LosslessObject;

/** A record's place in the host module's hash chain (see README, "The hash chain"). */
export interface ChainLink {
    readonly prevHash: string;
    readonly hash: string;
    /** The canonical form its hash was computed with: 1 (keyed digest only) or 2 (content committed). */
    readonly version?: 1 | 2;
}

/**
 * What a v2 chain link commits to of a change's content: its size, and `sha256:` of salt ‖ content. The salt is
 * published only together with the content, so anyone can check a shown content against the chain, while a
 * withheld one allows no guess test.
 */
export interface ContentCommitment {
    readonly size: number;
    readonly commitment: string;
    readonly salt: string;
}

/** A record the audit room shows: its seq and chain hash. */
export interface PostedRef {
    readonly seq: number;
    readonly hash: string;
}

/** What every record carries for the tamper-evident trail. */
export interface TrailInfo {
    /** HMAC-SHA256 (hex) under the host module's key: of the content, or of a notice's details. */
    readonly keyedDigest: string | null;
    /** Null from host modules before the hash chain. */
    readonly chain: ChainLink | null;
    /**
     * The record the audit room shows before this one (in seq order), if the built-in audit module posts this
     * one: records with seqs in between were left out by the audit policy. Set by the appservice.
     */
    readonly prevPosted?: PostedRef | null;
}

/** Where a change came from; Synapse's callback has no such argument, modules may ignore it. */
export interface ChangeInfo extends TrailInfo {
    /** Stable id assigned by the host module when the change was recorded. */
    readonly id: string;
    /** Per-server sequence number; strictly increasing in the order the changes happened. */
    readonly seq: number;
    /** When the homeserver recorded the change (ms since the epoch); for a recovered change, when it was found. */
    readonly ts: number;
    /**
     * True if the host module did not see this change happen but found it after an unclean shutdown of the
     * homeserver, in the homeserver's own tables (see README, "Crash recovery"). The content is the value the
     * homeserver holds, which is the change's own.
     */
    readonly recovered: boolean;
    /** The content's JSON text exactly as the homeserver stored it (compact, non-ASCII as \uXXXX). */
    readonly contentJson: string;
    /** The chain's commitment to the content (v2 chain links; null before). */
    readonly committed?: ContentCommitment | null;
}

/** A key whose earlier values may have been overwritten before they could be recorded. */
export interface AuditGapKey {
    readonly userId: string;
    readonly roomId: string | null;
    readonly type: string;
    /** Stream positions between its last recorded change and its current value that nothing accounts for. */
    readonly unaccounted: number;
    /** "recovered": its latest value was recovered; "changed_after_restart": it changed again since. */
    readonly latest: "recovered" | "changed_after_restart";
}

/**
 * Recovery after an unclean shutdown found account-data values that were overwritten before they could be
 * recorded: the homeserver keeps only each key's latest value, so those are lost. Which of `keys` they
 * belonged to, and exactly how many there were, is not known; `lost` is an upper bound.
 */
export interface AuditGap extends TrailInfo {
    readonly id: string;
    readonly seq: number;
    readonly ts: number;
    readonly lost: number;
    readonly keys: readonly AuditGapKey[];
    /** The homeserver's account-data stream positions the recovery looked at: (after, through]. */
    readonly streamPositions: { readonly after: number; readonly through: number };
}

export type OnAccountDataGap = (gap: AuditGap) => Promise<void>;

/**
 * A user was deactivated (or reactivated). Synapse deletes a deactivated user's account data without calling
 * the account-data callback, so this is the record of that deletion.
 */
export interface UserDeactivation extends TrailInfo {
    readonly id: string;
    readonly seq: number;
    readonly ts: number;
    readonly userId: string;
    readonly deactivated: boolean;
    readonly byAdmin: boolean;
}

export type OnUserDeactivation = (record: UserDeactivation) => Promise<void>;

/**
 * The host module writes a checkpoint when no record was written for a while (its checkpoint interval): a
 * record of its own in the chain, so a reader of the room can tell "nothing changed" from "nothing was posted".
 */
export interface AuditCheckpoint extends TrailInfo {
    readonly id: string;
    readonly seq: number;
    readonly ts: number;
}

export type OnAuditCheckpoint = (checkpoint: AuditCheckpoint) => Promise<void>;

export type OnAccountDataUpdated = (
    userId: string,
    roomId: string | null,
    accountDataType: string,
    content: AccountDataContent,
    change: ChangeInfo,
) => Promise<void>;

/** One change of a digest: the arguments of onAccountDataUpdated in one object. */
export interface DigestChange extends ChangeInfo {
    readonly userId: string;
    readonly roomId: string | null;
    readonly type: string;
    readonly content: AccountDataContent;
}

/**
 * Several consecutive changes to be recorded together (digest mode, README "Digest mode"), in seq order. A
 * module without this callback gets each change through onAccountDataUpdated instead, one after another.
 */
export type OnAccountDataDigest = (changes: readonly DigestChange[]) => Promise<void>;

/**
 * A change the appservice could not read (its content is not the JSON text of an object: a host module bug),
 * given instead of onAccountDataUpdated with the reason. The audit module posts it quarantined.
 */
export type OnAccountDataQuarantined = (
    change: ChangeInfo & {
        readonly userId: string;
        readonly roomId: string | null;
        readonly type: string;
        /** The content's size in bytes, where the change came without it (too large to deliver). */
        readonly contentSize?: number;
    },
    reason: string,
) => Promise<void>;

export interface AccountDataCallbacks {
    onAccountDataUpdated?: OnAccountDataUpdated;
    /** Not in Synapse's API: called where the trail has a known gap (see AuditGap). */
    onAccountDataGap?: OnAccountDataGap;
    /** Not in Synapse's API (which has it among third-party rules callbacks): see UserDeactivation. */
    onUserDeactivation?: OnUserDeactivation;
    /** Not in Synapse's API: see OnAccountDataDigest. */
    onAccountDataDigest?: OnAccountDataDigest;
    /** Not in Synapse's API: see OnAccountDataQuarantined. */
    onAccountDataQuarantined?: OnAccountDataQuarantined;
    /** Not in Synapse's API: see AuditCheckpoint. */
    onAuditCheckpoint?: OnAuditCheckpoint;
}

/** The event a module asks to send, shaped like the dict Synapse's `create_and_send_event_into_room` takes. */
export interface EventToSend {
    room_id: string;
    sender: string;
    type: string;
    content: Record<string, unknown>;
}

export interface SendOptions {
    /**
     * Names this send within the current change, so a retried change reuses the same transaction ID and
     * the homeserver does not post twice. Defaults to the send's position within the callback
     * ("0", "1", …), which is stable as long as the callback sends the same events each time.
     */
    idempotencyKey?: string;
}

export interface ModuleApi {
    /** The homeserver's server_name. */
    readonly serverName: string;
    registerAccountDataCallbacks(callbacks: AccountDataCallbacks): void;
    /**
     * Sends an event as `event.sender` (a user of this appservice), retrying rate limits, 5xx and network
     * errors. Throws EventTooLargeError if the homeserver refuses the event's size, EventRefusedError if it
     * refuses it for anything else it holds (the callback may post something else instead; if it throws it,
     * the change is logged and counted and the trail goes on), SendFailedError where delivery must hold (the
     * room, the sender, the token, or the homeserver unreachable: the change is retried later). Returns the
     * event ID.
     */
    createAndSendEventIntoRoom(event: EventToSend, options?: SendOptions): Promise<string>;
}

export interface ModuleClass<C> {
    new (config: C, api: ModuleApi): unknown;
    parseConfig(raw: unknown): C;
}
