/** GET /health (HealthRoute.ts): its JSON, and that it answers instead of the bridge's plain "OK". */
import type { AddressInfo } from "node:net";
import express from "express";
import type { AppService } from "matrix-appservice-bridge";
import { afterEach, describe, expect, it } from "vitest";
import type { DeliveryState, IngestState } from "../../src/ingest/DeliveryHealth.js";
import { addHealthRoute } from "../../src/ingest/HealthRoute.js";
import type { RoomProblem } from "../../src/matrix/RoomSafety.js";

const servers: { close(): void }[] = [];
afterEach(() => {
    for (const server of servers.splice(0)) server.close();
});

/** An Express app like the bridge's (its own plain /health first), with ours added; answers GET /health. */
async function health(
    problems: () => Promise<RoomProblem[] | null>,
    delivery?: () => DeliveryState,
    ingest?: () => IngestState | null,
    before: (app: express.Express) => void = (app) => app.get("/health", (_req, res) => res.send("OK")),
): Promise<unknown> {
    const app = express();
    app.get("/other", (_req, res) => res.send("other"));
    before(app);
    app.get("/after", (_req, res) => res.send("after"));
    addHealthRoute({ expressApp: app } as unknown as AppService, problems, delivery, ingest);
    const server = app.listen(0, "127.0.0.1");
    servers.push(server);
    await new Promise((resolve) => server.once("listening", resolve));
    const { port } = server.address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    expect(res.status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/after`)).status).toBe(200);
    return res.json();
}

const HELD: DeliveryState = {
    status: "held",
    reason: "room",
    detail: "d",
    admin_hint: null,
    since: "2026-01-01T00:00:00.000Z",
};

describe("GET /health", () => {
    it("says ok with a safe room, before the bridge's own route", async () => {
        expect(await health(() => Promise.resolve([]))).toEqual({
            status: "ok",
            delivery: { status: "ok" },
            ingest: null,
            audit_room: { problems: [] },
        });
    });

    it("says degraded while delivery is held, with the room's problems and the ingest state", async () => {
        const problem: RoomProblem = { code: "joinable", detail: "x" };
        const ingest: IngestState = { last_batch_at: null, checkpoint_interval_seconds: 60, interval_from_host: true };
        expect(
            await health(
                () => Promise.resolve([problem]),
                () => HELD,
                () => ingest,
            ),
        ).toEqual({ status: "degraded", delivery: HELD, ingest, audit_room: { problems: [problem] } });
    });

    it("shows no room check when the room is not checked yet, or the check failed", async () => {
        expect(await health(() => Promise.resolve(null))).toMatchObject({ status: "ok", audit_room: null });
        expect(await health(() => Promise.reject(new Error("down")))).toMatchObject({ status: "ok", audit_room: null });
    });

    it("is served even when the app has no /health of its own", async () => {
        expect(
            await health(
                () => Promise.resolve([]),
                undefined,
                undefined,
                () => undefined,
            ),
        ).toMatchObject({
            status: "ok",
        });
    });
});
