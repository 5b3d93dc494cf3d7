import { type Infer, parseFields, section, stringField } from "../config/Schema.js";
import { isRoomAlias, isRoomId, isUserId } from "../matrix/Identifiers.js";
import { auditPolicySchema } from "./audit/Policy.js";

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
