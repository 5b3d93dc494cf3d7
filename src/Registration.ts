import { AppServiceRegistration } from "matrix-appservice-bridge";

export const DEFAULT_SENDER_LOCALPART = "account-data-audit";

function escapeRegExp(text: string): string {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Fills in a new registration: fresh tokens, the sender as the appservice's own user with an exclusive
 * namespace, and no rate limits (an audit trail must not fall behind the changes it records).
 */
export function completeRegistration(reg: AppServiceRegistration, localpart?: string): AppServiceRegistration {
    const senderLocalpart = localpart ?? reg.getSenderLocalpart() ?? DEFAULT_SENDER_LOCALPART;
    reg.setId(`account-data-audit-${AppServiceRegistration.generateToken().slice(0, 8)}`);
    reg.setHomeserverToken(AppServiceRegistration.generateToken());
    reg.setAppServiceToken(AppServiceRegistration.generateToken());
    reg.setSenderLocalpart(senderLocalpart);
    reg.addRegexPattern("users", `@${escapeRegExp(senderLocalpart)}:.*`, true);
    reg.setRateLimited(false);
    return reg;
}
