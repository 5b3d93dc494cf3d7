/**
 * A refusal that concerns the room or the sender is not a change's fault: delivery holds, /health and a metric
 * say why, nothing is dropped, and delivery resumes by itself once the room takes the sender's events again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, outboxDepth, type TestEnv } from "../../src/devenv/TestEnv.js";
import { DATABASE } from "./helpers.js";

interface Health {
    status: string;
    delivery: { status: string; reason?: string; detail?: string; admin_hint?: string | null };
}

describe(`delivery held by the room (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;

    beforeAll(async () => {
        env = await createTestEnv({ database: DATABASE });
        alice = await env.newUser("alice");
        await env.auditor.catchUp();
    });
    afterAll(async () => {
        await env?.tearDown();
    });

    async function health(): Promise<Health> {
        return (await (await fetch(`http://127.0.0.1:${env.appservice.port}/health`)).json()) as Health;
    }

    async function metric(name: string): Promise<string> {
        const text = await (await fetch(`http://127.0.0.1:${env.appservice.port}/metrics`)).text();
        return text.split("\n").find((line) => line.startsWith(name)) ?? "";
    }

    async function waitFor<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 30_000): Promise<T> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const value = await probe();
            if (value !== null) return value;
            if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
    }

    it("holds while the sender may not post, says why, and resumes without losing a change", async () => {
        const path = `/_matrix/client/v3/rooms/${encodeURIComponent(env.auditRoomId)}/state/m.room.power_levels/`;
        const levels = await env.auditor.http.request<Record<string, unknown>>("GET", path);
        await env.auditor.http.request("PUT", path, { ...levels, events_default: 100 });

        await alice.setAccountData("org.example.held", '{"n":1}');
        const held = await waitFor("delivery held", async () => {
            const h = await health();
            return h.delivery.status === "held" ? h : null;
        });
        expect(held).toMatchObject({ status: "degraded", delivery: { reason: "room" } });
        expect(held.delivery.admin_hint).toContain(env.senderUserId);
        expect(await metric('account_data_audit_delivery_held{reason="room"}')).toMatch(/ 1$/);
        expect(await outboxDepth(env)).toBe(1);

        await env.auditor.http.request("PUT", path, levels);
        const event = await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.held"));
        expect(event.content.body).toBe(
            `${alice.userId} has changed their account data for type org.example.held to: {"n": 1}`,
        );
        await waitFor("delivery ok", async () => ((await health()).status === "ok" ? true : null));
        expect(await metric('account_data_audit_delivery_held{reason="room"}')).toMatch(/ 0$/);
        expect(await metric("account_data_audit_quarantined_total")).toBe("");
        expect((await env.verify()).code).toBe(0);
    });
});
