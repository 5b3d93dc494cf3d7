/**
 * At startup, tells the host module the appservice is back (POST /_synapse/client/account_data_audit/v1/wake on
 * the homeserver, with the ingest token as bearer), so the delivery loop ends its backoff (up to a minute) and
 * retries at once; on workers the request reaches whichever instance serves the path, which passes it on to the
 * delivering one through Synapse's database (see the host module's wake.py). The answer also says the host
 * module's checkpoint interval, by which /health judges a silence.
 *
 * Never fails the startup: a host module without the endpoint (older, or a reverse proxy that does not forward
 * /_synapse/client) only means delivery resumes after its backoff, as before.
 */
import { Logger } from "matrix-appservice-bridge";
import { type DeliveryHealth, TOKEN_MISMATCH } from "./DeliveryHealth.js";

const log = new Logger("WakeHost");

export const WAKE_PATH = "/_synapse/client/account_data_audit/v1/wake";

export type WakeResult = "woken" | "token_mismatch" | "no_endpoint" | "failed";

export async function wakeHost(
    homeserverUrl: string,
    token: string,
    health?: DeliveryHealth,
    fetchImpl: typeof fetch = fetch,
): Promise<WakeResult> {
    const url = homeserverUrl.replace(/\/+$/, "") + WAKE_PATH;
    let response: Response;
    try {
        response = await fetchImpl(url, {
            method: "POST",
            headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
            body: "{}",
            signal: AbortSignal.timeout(10_000),
        });
    } catch (err) {
        log.warn(`Could not ask the host module to resume delivery (${url}): ${(err as Error).message}`);
        return "failed";
    }
    const body = (await response.json().catch(() => null)) as Record<string, unknown> | null;
    if (response.ok) {
        const interval = body?.checkpoint_interval_seconds;
        health?.hostInterval(typeof interval === "number" ? interval : null);
        log.info("Asked the host module to resume delivery now");
        return "woken";
    }
    if (response.status === 401 || response.status === 403) {
        log.error(
            `The host module refused the wake request (${response.status} ${String(body?.errcode)}): ${TOKEN_MISMATCH}`,
        );
        return "token_mismatch";
    }
    if (response.status === 404) {
        log.info(
            `The homeserver has no ${WAKE_PATH} (an older host module, or a proxy that does not forward ` +
                "/_synapse/client): delivery resumes after the host module's backoff",
        );
        return "no_endpoint";
    }
    log.warn(`The host module answered the wake request with ${response.status}`);
    return "failed";
}
