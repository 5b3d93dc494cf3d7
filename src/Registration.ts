import { AppServiceRegistration } from "matrix-appservice-bridge";

export const DEFAULT_SENDER_LOCALPART = "account-data-audit";

function escapeRegExp(text: string): string {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The exact-match regex Synapse's `namespaces.aliases` needs for one alias (it matches from the start). */
export function aliasRegex(alias: string): string {
    return `${escapeRegExp(alias)}$`;
}

/**
 * Fills in a new registration: fresh tokens, the sender as the appservice's own user with an exclusive
 * namespace, and no rate limits (an audit trail must not fall behind the changes it records). `aliases` are
 * reserved exclusively: Synapse lets an appservice create an alias only inside its own alias namespace
 * (M_EXCLUSIVE otherwise), and nobody else can then take the audit room's alias.
 */
export function completeRegistration(
    reg: AppServiceRegistration,
    localpart?: string,
    aliases: readonly string[] = [],
): AppServiceRegistration {
    const senderLocalpart = localpart ?? reg.getSenderLocalpart() ?? DEFAULT_SENDER_LOCALPART;
    reg.setId(`account-data-audit-${AppServiceRegistration.generateToken().slice(0, 8)}`);
    reg.setHomeserverToken(AppServiceRegistration.generateToken());
    reg.setAppServiceToken(AppServiceRegistration.generateToken());
    reg.setSenderLocalpart(senderLocalpart);
    reg.addRegexPattern("users", `@${escapeRegExp(senderLocalpart)}:.*`, true);
    for (const alias of aliases) reg.addRegexPattern("aliases", aliasRegex(alias), true);
    reg.setRateLimited(false);
    return reg;
}
