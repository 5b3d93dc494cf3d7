/**
 * The built-in audit module's keys and its audit policy's: their schema sits here, beside the schema kit and the
 * appservice's own keys (Config.ts), so config/ never imports modules/; the module and its policy
 * (modules/AuditModule.ts, modules/audit/Policy.ts) import it from here.
 */
import { isRoomAlias, isRoomId, isUserId } from "../matrix/Identifiers.js";
import { enumField, type Infer, listField, parseFields, section, stringField, stringListField } from "./Schema.js";

export const AUDIT_LEVELS = ["none", "metadata", "full"] as const;
export type AuditLevel = (typeof AUDIT_LEVELS)[number];

/** The `rooms` value that stands for global (not per-room) account data. */
export const GLOBAL_ROOM = "global";

const ruleSchema = section("A rule.", {
    types: stringListField({ doc: "Glob patterns (* and ?) on the account-data type." }),
    users: stringListField({ doc: "Glob patterns on the user ID; any user if absent.", default: null }),
    rooms: stringListField({
        doc: `Glob patterns on the room ID, or "${GLOBAL_ROOM}" for global account data; anything if absent.`,
        default: null,
    }),
    level: enumField({
        doc: "full: the message with the content; metadata: without it (size and keyed digest); none: no message.",
        values: AUDIT_LEVELS,
    }),
});

export const auditPolicySchema = section(
    "What the audit room shows of each change. The first rule that matches decides; a change no rule\n" +
        "matches is recorded in full.",
    {
        rules: listField({
            doc:
                "Rules, in order. Each has `types` (glob patterns on the account-data type; * and ? as in a\n" +
                `shell), optional \`users\` (globs on the user ID) and \`rooms\` (globs on the room ID, "${GLOBAL_ROOM}" for\n` +
                "global account data), and a `level`: full (the message with the content, as Synapse's example\n" +
                "module posts it), metadata (the same sentence with the content replaced by its size and a keyed\n" +
                "digest) or none (no message; the change is still acknowledged and counted).",
            default: [],
            sample: [{ types: ["m.fully_read"], rooms: ["*"], level: "none" }],
            item: ruleSchema,
        }),
        // The types named here are Policy.ts's SECRET_TYPES.
        secrets: enumField({
            doc:
                "withhold: m.secret_storage.*, m.cross_signing.*, m.megolm_backup.v1, org.matrix.msc3814 and\n" +
                'm.dehydrated_device, and any secret-storage item (content {"encrypted": {key: {ciphertext, mac}}})\n' +
                "hold encrypted secrets and the parameters to test passphrase guesses offline; they are recorded at\n" +
                "metadata (or none, if a rule says so), whatever the rules say. post: record them like any other type.",
            default: "withhold",
            values: ["withhold", "post"],
        }),
    },
);

export type AuditPolicyConfig = Infer<typeof auditPolicySchema>;

/** The audit module's own keys; they sit at the top level of the appservice's config. */
export const auditModuleSchema = section("The built-in audit module.", {
    audit_room: stringField({
        doc:
            "The room that receives one message per account-data change: a room ID (!abc:example.org) or an\n" +
            "alias (#audit:example.org), resolved when the appservice starts. The sender must be invited to it\n" +
            "(or the room must be public) and be allowed to post m.room.message events.",
        sample: "#account-data-audit:example.org",
        check: (v) =>
            isRoomId(v) || isRoomAlias(v) ? undefined : "must be a room ID (!…) or a room alias (#…:server)",
    }),
    sender: stringField({
        doc:
            "The user that posts the audit messages. It must be inside the exclusive user namespace of the\n" +
            "appservice registration (registration.yaml); it is registered on first start.",
        sample: "@account-data-audit:example.org",
        check: (v) => (isUserId(v) ? undefined : "must be a user ID such as @audit:example.org"),
    }),
    audit: auditPolicySchema,
});

export type AuditModuleConfig = Infer<typeof auditModuleSchema>;

/** Parses the audit module's keys out of `raw`, ignoring any other keys. */
export function parseAuditModuleConfig(raw: unknown): AuditModuleConfig {
    return parseFields(auditModuleSchema.fields, raw);
}
