import { mkdtempSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppService } from "matrix-appservice-bridge";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseLine } from "../../src/export/ExportLine.js";
import { JsonlSink } from "../../src/export/JsonlSink.js";
import { ChangeProcessor } from "../../src/ingest/ChangeProcessor.js";
import { addIngestRoutes } from "../../src/ingest/IngestRoute.js";
import { CHANGES_PATH } from "../../src/ingest/Protocol.js";
import { Metrics } from "../../src/Metrics.js";
import type { AuditUnit } from "../../src/modules/ModuleHost.js";

const TOKEN = "hs-token-for-tests";

function wireChange(seq: number): Record<string, unknown> {
    return {
        id: `id${seq}`,
        seq,
        ts: 1_700_000_000_000,
        user_id: "@alice:example.org",
        room_id: null,
        type: "m.test",
        content: `{"n":${seq}}`,
    };
}

describe("the change endpoint with the JSONL export", () => {
    let appService: AppService;
    let url: string;
    let path: string;
    let dispatched: number[];
    let roomRefuses: boolean;

    beforeEach(async () => {
        dispatched = [];
        roomRefuses = false;
        path = join(mkdtempSync(join(tmpdir(), "jsonl-ingest-")), "audit.jsonl");
        const sink = new JsonlSink(
            { rules: [], secrets: "withhold" },
            { file: { path, rotateBytes: 0, rotateSeconds: 0 } },
        );
        await sink.open();
        const metrics = new Metrics(new Registry());
        const modules = {
            dispatch: async (unit: AuditUnit) => {
                if (roomRefuses) throw new Error("the room refuses");
                dispatched.push(unit.seq);
            },
        };
        const processor = new ChangeProcessor(modules, metrics, 8, 5_000, null, null, sink);
        appService = new AppService({ homeserverToken: TOKEN, httpMaxSizeBytes: 1024 * 1024 });
        addIngestRoutes(appService, processor, TOKEN, metrics);
        await appService.listen(0, "127.0.0.1", 10);
        const address = (appService as unknown as { server: { address(): AddressInfo } }).server.address();
        url = `http://127.0.0.1:${address.port}${CHANGES_PATH}`;
    });
    afterEach(async () => {
        await appService.close();
    });

    async function post(body: Record<string, unknown>) {
        const res = await fetch(url, {
            method: "POST",
            headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
            body: JSON.stringify(body),
        });
        return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    }

    const fileSeqs = () =>
        readFileSync(path, "utf8")
            .split("\n")
            .filter((l) => l)
            .map((l) => parseLine(l)?.record.seq);

    it("says in every answer how far the file got, also when the room refuses the batch", async () => {
        const ok = await post({ changes: [wireChange(1), wireChange(2)] });
        expect(ok).toMatchObject({ status: 200, json: { acknowledged_through: 2, sinks: { jsonl: 2 } } });
        roomRefuses = true;
        const held = await post({ changes: [wireChange(3), wireChange(4)] });
        expect(held).toMatchObject({ status: 503, json: { processed_through: null, sinks: { jsonl: 4 } } });
        expect(fileSeqs()).toEqual([1, 2, 3, 4]);
    });

    it("writes a sinks_only batch to the file only, once, and never acknowledges it for the room", async () => {
        roomRefuses = true;
        await post({ changes: [wireChange(1)] });
        const only = await post({ changes: [wireChange(2), wireChange(3)], sinks_only: ["jsonl"] });
        expect(only.status).toBe(200);
        expect(only.json.sinks).toEqual({ jsonl: 3 });
        expect(only.json).not.toHaveProperty("acknowledged_through");
        expect(dispatched).toEqual([]);
        // The room is back: the host module resends from its acknowledged position; the file skips what it has.
        roomRefuses = false;
        const resent = await post({ changes: [wireChange(1), wireChange(2), wireChange(3), wireChange(4)] });
        expect(resent).toMatchObject({ status: 200, json: { acknowledged_through: 4, sinks: { jsonl: 4 } } });
        expect(dispatched).toEqual([1, 2, 3, 4]);
        expect(fileSeqs()).toEqual([1, 2, 3, 4]);
    });

    it("writes each change's content as received (read from its text when written, not when it arrived)", async () => {
        await post({ changes: [wireChange(1), { ...wireChange(2), content: "{" }] });
        const lines = readFileSync(path, "utf8")
            .split("\n")
            .filter((l) => l)
            .map((l) => parseLine(l));
        expect(lines[0]?.body).toBe('@alice:example.org has changed their account data for type m.test to: {"n": 1}');
        expect(lines[1]?.record).toMatchObject({ level: "quarantined", quarantine: { reason: /not valid JSON/ } });
    });

    it("refuses a malformed sinks_only", async () => {
        const res = await post({ changes: [wireChange(1)], sinks_only: "jsonl" });
        expect(res).toMatchObject({ status: 400, json: { field: "sinks_only" } });
    });
});
