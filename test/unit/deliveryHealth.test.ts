/**
 * DeliveryHealth (what /health and the delivery_held metric say) and wakeHost's answers: the states, their
 * wording, their times, and the metric per reason.
 */
import { describe, expect, it, vi } from "vitest";
import { DeliveryHealth, TOKEN_MISMATCH } from "../../src/ingest/DeliveryHealth.js";
import { wakeHost } from "../../src/ingest/WakeHost.js";
import { SendFailedError } from "../../src/matrix/SendErrors.js";

const START = Date.UTC(2026, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();

function setup() {
    let t = START;
    const gauge = new Map<string, number>();
    const metrics = {
        deliveryHeld: { set: (labels: { reason: string }, value: number) => gauge.set(labels.reason, value) },
    };
    const health = new DeliveryHealth(metrics as never, () => t);
    return { health, gauge, advance: (ms: number) => (t += ms), now: () => t };
}

describe("DeliveryHealth", () => {
    it("starts ok with every reason's metric at 0 and the default interval assumed", () => {
        const { health, gauge } = setup();
        expect(health.snapshot()).toEqual({ status: "ok" });
        expect(Object.fromEntries(gauge)).toEqual({ room: 0, auth: 0, transient: 0, token_mismatch: 0, no_batches: 0 });
        expect(health.ingest()).toEqual({
            last_batch_at: null,
            checkpoint_interval_seconds: 3600,
            interval_from_host: false,
        });
    });

    it("is held with the error's reason, detail and hint, since the first failure, until a delivery", () => {
        const { health, gauge, advance } = setup();
        health.held(new SendFailedError("room gone", "re-create it", "room"));
        advance(5000);
        health.held(new SendFailedError("still gone", undefined, "room"));
        expect(health.snapshot()).toEqual({
            status: "held",
            reason: "room",
            detail: "still gone",
            admin_hint: null,
            since: iso(START),
        });
        expect(gauge.get("room")).toBe(1);
        expect(gauge.get("transient")).toBe(0);
        health.held(new SendFailedError("limit", "wait", "transient"));
        expect(gauge.get("room")).toBe(0);
        expect(gauge.get("transient")).toBe(1);
        health.delivered();
        expect(health.snapshot()).toEqual({ status: "ok" });
        expect([...gauge.values()].every((v) => v === 0)).toBe(true);
    });

    it("is stalled past twice the host's interval and a minute without a batch, saying since when", () => {
        const { health, gauge, advance } = setup();
        health.hostInterval(0); // not an interval: ignored
        health.hostInterval(null);
        health.hostInterval(10);
        expect(health.ingest()).toMatchObject({ checkpoint_interval_seconds: 10, interval_from_host: true });
        advance(80_000);
        expect(health.snapshot()).toEqual({ status: "ok" });
        advance(1);
        const stalled = health.snapshot();
        expect(stalled).toMatchObject({ status: "stalled", reason: "no_batches", since: iso(START + 80_000) });
        expect((stalled as { detail: string }).detail).toBe(
            "No batch from the host module for 80 s (since this appservice started), while its checkpoints " +
                "(every 10 s when idle) say one is due at least every 10 s",
        );
        expect(gauge.get("no_batches")).toBe(1);
        health.batchArrived();
        expect(health.snapshot()).toEqual({ status: "ok" });
        expect(gauge.get("no_batches")).toBe(0);
        expect(health.ingest().last_batch_at).toBe(iso(START + 80_001));
        advance(200_000);
        expect((health.snapshot() as { detail: string }).detail).toContain("for 200 s (since the last one)");
    });

    it("is stalled for the token from the first refusal until a batch passes", () => {
        const { health, gauge, advance } = setup();
        health.tokenRefused();
        advance(1000);
        health.tokenRefused();
        expect(health.snapshot()).toMatchObject({
            status: "stalled",
            reason: "token_mismatch",
            detail: `The host module's batches are refused: ${TOKEN_MISMATCH}`,
            since: iso(START),
        });
        expect(gauge.get("token_mismatch")).toBe(1);
        health.batchArrived(30);
        expect(health.snapshot()).toEqual({ status: "ok" });
        expect(health.ingest().checkpoint_interval_seconds).toBe(30);
    });

    it("shows a hold before a stall", () => {
        const { health, advance } = setup();
        health.tokenRefused();
        advance(10);
        health.held(new SendFailedError("x", undefined, "auth"));
        expect(health.snapshot()).toMatchObject({ status: "held", reason: "auth" });
    });
});

describe("wakeHost's answers", () => {
    const answer = (status: number, body = "{}") => vi.fn(async () => new Response(body, { status }));

    it("posts an empty JSON object to the wake path, trailing slashes trimmed", async () => {
        const fetchImpl = answer(200);
        expect(await wakeHost("http://hs//", "tok", undefined, fetchImpl as unknown as typeof fetch)).toBe("woken");
        const [url, init] = fetchImpl.mock.calls[0] as unknown as [string, RequestInit];
        expect(url).toBe("http://hs/_synapse/client/account_data_audit/v1/wake");
        expect(init).toMatchObject({ method: "POST", body: "{}" });
        expect((init.headers as Record<string, string>)["Content-Type"]).toBe("application/json");
    });

    it("learns no interval from an answer without one, or one that is not JSON", async () => {
        const health = new DeliveryHealth();
        expect(await wakeHost("http://hs", "t", health, answer(200, "not json") as unknown as typeof fetch)).toBe(
            "woken",
        );
        expect(
            await wakeHost(
                "http://hs",
                "t",
                health,
                answer(200, '{"checkpoint_interval_seconds":"5"}') as unknown as typeof fetch,
            ),
        ).toBe("woken");
        expect(health.ingest().interval_from_host).toBe(false);
    });

    it("names each refusal", async () => {
        const wake = (status: number) =>
            wakeHost("http://hs", "t", undefined, answer(status) as unknown as typeof fetch);
        expect(await wake(401)).toBe("token_mismatch");
        expect(await wake(403)).toBe("token_mismatch");
        expect(await wake(404)).toBe("no_endpoint");
        expect(await wake(500)).toBe("failed");
        expect(await wake(400)).toBe("failed");
    });
});
