/** /health's "stalled" states: batches refused for their token, or overdue by the host module's checkpoints. */
import type { Request, Response } from "express";
import { describe, expect, it, vi } from "vitest";
import { DeliveryHealth, TOKEN_MISMATCH } from "../../src/ingest/DeliveryHealth.js";
import { bearerTokenGuard } from "../../src/ingest/IngestRoute.js";
import { parseChangeBatch } from "../../src/ingest/Protocol.js";
import { wakeHost } from "../../src/ingest/WakeHost.js";

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
    let t = start;
    return { now: () => t, advance: (ms) => (t += ms) };
}

describe("DeliveryHealth: batches overdue by the checkpoints", () => {
    it("is stalled once no batch came for 2 × the host's interval + 60 s", () => {
        const c = clock();
        const health = new DeliveryHealth(undefined, c.now);
        health.batchArrived(100);
        c.advance(260_000);
        expect(health.snapshot()).toEqual({ status: "ok" });
        c.advance(1);
        expect(health.snapshot()).toMatchObject({ status: "stalled", reason: "no_batches" });
        health.batchArrived(100);
        expect(health.snapshot()).toEqual({ status: "ok" });
        expect(health.ingest()).toMatchObject({ checkpoint_interval_seconds: 100, interval_from_host: true });
    });

    it("assumes the host's default hour until it says its interval, counted from startup", () => {
        const c = clock();
        const health = new DeliveryHealth(undefined, c.now);
        c.advance(2 * 3600_000 + 60_000);
        expect(health.snapshot().status).toBe("ok");
        c.advance(1);
        expect(health.snapshot()).toMatchObject({ status: "stalled", reason: "no_batches" });
        health.hostInterval(7200); // the wake answer
        expect(health.snapshot().status).toBe("ok");
    });

    it("a refused token is stalled until a batch passes the check", () => {
        const c = clock();
        const health = new DeliveryHealth(undefined, c.now);
        health.tokenRefused();
        expect(health.snapshot()).toMatchObject({ status: "stalled", reason: "token_mismatch" });
        health.batchArrived(null);
        expect(health.snapshot()).toEqual({ status: "ok" });
    });
});

function fakeExchange(authorization?: string): { req: Request; res: Response; sent: () => unknown[] } {
    const sent: unknown[] = [];
    const res = {
        status: (code: number) => ({ json: (body: unknown) => sent.push(code, body) }),
    } as unknown as Response;
    const req = { headers: authorization ? { authorization } : {} } as Request;
    return { req, res, sent: () => sent };
}

describe("bearerTokenGuard: a wrong token is a token mismatch", () => {
    it("answers 403 M_UNKNOWN_TOKEN naming the mismatch and marks /health", () => {
        const health = new DeliveryHealth();
        const guard = bearerTokenGuard("right", health);
        const { req, res, sent } = fakeExchange("Bearer wrong");
        const next = vi.fn();
        guard(req, res, next);
        expect(next).not.toHaveBeenCalled();
        expect(sent()[0]).toBe(403);
        expect(sent()[1]).toMatchObject({ errcode: "M_UNKNOWN_TOKEN", error: expect.stringContaining(TOKEN_MISMATCH) });
        expect(health.snapshot()).toMatchObject({ status: "stalled", reason: "token_mismatch" });
        const ok = fakeExchange("Bearer right");
        guard(ok.req, ok.res, next);
        expect(next).toHaveBeenCalledOnce();
    });
});

describe("protocol: checkpoint_interval_seconds", () => {
    it("is optional and must be positive", () => {
        expect(parseChangeBatch({ changes: [] }).checkpointIntervalSeconds).toBeNull();
        expect(parseChangeBatch({ changes: [], checkpoint_interval_seconds: 3600 }).checkpointIntervalSeconds).toBe(
            3600,
        );
        expect(() => parseChangeBatch({ changes: [], checkpoint_interval_seconds: 0 })).toThrow(/checkpoint_interval/);
        expect(() => parseChangeBatch({ changes: [], checkpoint_interval_seconds: "1" })).toThrow(
            /checkpoint_interval/,
        );
    });
});

describe("wakeHost", () => {
    it("posts the ingest token and learns the checkpoint interval", async () => {
        const health = new DeliveryHealth();
        const fetchImpl = vi.fn(
            async () => new Response(JSON.stringify({ woken: true, checkpoint_interval_seconds: 42 })),
        );
        expect(await wakeHost("http://hs/", "tok", health, fetchImpl as unknown as typeof fetch)).toBe("woken");
        const [url, init] = fetchImpl.mock.calls[0] as unknown as [string, RequestInit];
        expect(url).toBe("http://hs/_synapse/client/account_data_audit/v1/wake");
        expect((init.headers as Record<string, string>).Authorization).toBe("Bearer tok");
        expect(health.ingest().checkpoint_interval_seconds).toBe(42);
    });

    it("names a refused token as a mismatch and never throws", async () => {
        const refused = async () => new Response('{"errcode":"M_UNKNOWN_TOKEN"}', { status: 403 });
        expect(await wakeHost("http://hs", "t", undefined, refused as unknown as typeof fetch)).toBe("token_mismatch");
        const down = async () => {
            throw new Error("ECONNREFUSED");
        };
        expect(await wakeHost("http://hs", "t", undefined, down as unknown as typeof fetch)).toBe("failed");
    });
});
