/**
 * The audit policy: which changes are recorded in full, which only as metadata (that the key changed, its
 * size and a keyed digest, never the value), and which not posted at all. The first rule that matches a
 * change decides; a change no rule matches is recorded in full. Secrets are withheld whatever the rules say
 * (see SECRET_TYPES) unless `secrets: post`.
 */
import { type AuditLevel, type AuditPolicyConfig, GLOBAL_ROOM } from "../../config/AuditModuleConfig.js";
import { LosslessObject } from "../../json/LosslessJson.js";
import { LazyContent } from "../../json/LazyContent.js";
import { GlobSet } from "./Glob.js";

// For the policy's users: these types come from its schema, which sits in config/ (config/ never imports modules/).
export type { AuditLevel, AuditPolicyConfig };

/**
 * Account data that holds users' encrypted secrets: the secret-storage keys' passphrase parameters (salt,
 * iterations, MAC: enough to test passphrase guesses offline), and the encrypted cross-signing and key-backup
 * private keys. Shown to the audit room only with `secrets: post`.
 */
export const SECRET_TYPES = [
    "m.secret_storage.*",
    "m.cross_signing.*",
    "m.megolm_backup.v1",
    // MSC3814 dehydrated devices: the key that unlocks the dehydrated device, kept in secret storage.
    "org.matrix.msc3814",
    "m.dehydrated_device",
];

/**
 * Any secret-storage item, whatever its type: the spec stores a secret in account data under the secret's
 * name as `{"encrypted": {<key ID>: {"iv", "ciphertext", "mac"}}}`, and clients add secrets of their own.
 */
export function isSecretStorageItem(content: LosslessObject | null | undefined): boolean {
    // A large content is not read value by value: it was decided from its plain parse (isPlainSecretStorageItem).
    if (content instanceof LazyContent) return content.secretStorageItem;
    const encrypted = content?.entries.get("encrypted");
    if (!(encrypted instanceof LosslessObject) || encrypted.entries.size === 0) return false;
    return [...encrypted.entries.values()].every(
        (item) => item instanceof LosslessObject && item.entries.has("ciphertext") && item.entries.has("mac"),
    );
}

/** isSecretStorageItem for a content read with `JSON.parse` (the same structure, without exact numbers). */
export function isPlainSecretStorageItem(content: Record<string, unknown>): boolean {
    const isObject = (v: unknown): v is Record<string, unknown> =>
        typeof v === "object" && v !== null && !Array.isArray(v);
    const encrypted = content.encrypted;
    if (!isObject(encrypted)) return false;
    const items = Object.values(encrypted);
    return items.length > 0 && items.every((item) => isObject(item) && "ciphertext" in item && "mac" in item);
}

interface CompiledRule {
    types: GlobSet;
    users: GlobSet | null;
    rooms: GlobSet | null;
    matchesGlobal: boolean;
    level: AuditLevel;
}

export interface Decision {
    level: AuditLevel;
    /** The type holds secrets, and the level was lowered for it. */
    withheldSecret: boolean;
}

export class AuditPolicy {
    private readonly rules: CompiledRule[];
    private readonly secretTypes = new GlobSet(SECRET_TYPES);

    public constructor(private readonly config: AuditPolicyConfig) {
        this.rules = config.rules.map((rule) => ({
            types: new GlobSet(rule.types),
            users: rule.users ? new GlobSet(rule.users) : null,
            rooms: rule.rooms ? new GlobSet(rule.rooms.filter((r) => r !== GLOBAL_ROOM)) : null,
            matchesGlobal: rule.rooms === null || rule.rooms.includes(GLOBAL_ROOM),
            level: rule.level,
        }));
    }

    /** `content`, where given, lets secret-storage items of any type be withheld (see isSecretStorageItem). */
    public decide(userId: string, roomId: string | null, type: string, content?: LosslessObject): Decision {
        const rule = this.rules.find(
            (r) =>
                r.types.matches(type) &&
                (r.users === null || r.users.matches(userId)) &&
                (roomId === null ? r.matchesGlobal : r.rooms === null || r.rooms.matches(roomId)),
        );
        const level = rule?.level ?? "full";
        const secret = this.secretTypes.matches(type) || isSecretStorageItem(content);
        if (this.config.secrets === "withhold" && level === "full" && secret) {
            return { level: "metadata", withheldSecret: true };
        }
        return { level, withheldSecret: false };
    }
}
