/**
 * The host module alone in a real Synapse, delivering to a stub receiver instead of the appservice: rows
 * arrive in order; with the receiver down they stay in the outbox across a Synapse restart and are
 * delivered once it is back.
 */
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/devenv/net.js";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { CHANGES_PATH } from "../../src/ingest/Protocol.js";
import { DATABASE, outboxDepth } from "./helpers.js";

interface WireChange {
    id: string;
    seq: number;
    user_id: string;
    room_id: string | null;
    type: string;
    content: string;
}

class StubReceiver {
    public readonly changes: WireChange[] = [];
    public readonly authHeaders = new Set<string>();
    private server: Server | null = null;
    private waiters: { count: number; resolve: () => void }[] = [];

    public constructor(public readonly port: number) {}

    public async start(): Promise<void> {
        this.server = createServer(async (req, res) => {
            let text = "";
            for await (const chunk of req) text += chunk;
            this.authHeaders.add(req.headers.authorization ?? "");
            if (req.url !== CHANGES_PATH) {
                res.writeHead(404).end();
                return;
            }
            const batch = JSON.parse(text) as { changes: WireChange[] };
            this.changes.push(...batch.changes);
            res.writeHead(200, { "Content-Type": "application/json" });
            res.end(JSON.stringify({ acknowledged_through: batch.changes.at(-1)?.seq ?? null }));
            this.waiters = this.waiters.filter((w) => (this.changes.length >= w.count ? (w.resolve(), false) : true));
        });
        await new Promise<void>((resolve) => this.server?.listen(this.port, "127.0.0.1", resolve));
    }

    public async stop(): Promise<void> {
        this.server?.closeAllConnections();
        await new Promise((resolve) => this.server?.close(resolve));
        this.server = null;
    }

    /** Resolves when `count` changes have arrived in total. */
    public waitFor(count: number, timeoutMs = 60_000): Promise<void> {
        if (this.changes.length >= count) return Promise.resolve();
        return new Promise((resolve, reject) => {
            const timer = setTimeout(
                () => reject(new Error(`only ${this.changes.length} of ${count} changes arrived`)),
                timeoutMs,
            );
            this.waiters.push({ count, resolve: () => (clearTimeout(timer), resolve()) });
        });
    }
}

describe(`host module in a real Synapse (${DATABASE})`, () => {
    let env: TestEnv;
    let receiver: StubReceiver;
    let alice: MatrixHttp;

    beforeAll(async () => {
        receiver = new StubReceiver(await freePort());
        await receiver.start();
        env = await createTestEnv({
            database: DATABASE,
            startAppservice: false,
            hostModuleConfig: {
                appservice_url: `http://127.0.0.1:${receiver.port}`,
                registration_file: undefined,
                token: "stub-token",
            },
        });
        alice = await env.newUser("alice");
    });
    afterAll(async () => {
        await receiver?.stop();
        await env?.tearDown();
    });

    it("delivers changes in order, with the content as stored, authenticated", async () => {
        const room = await alice.createRoom();
        const before = receiver.changes.length;
        await alice.setAccountData("org.example.a", '{"v":1.0,"big":12345678901234567890}');
        await alice.setRoomAccountData(room, "org.example.b", '{"é":"😀"}');
        await alice.setAccountData("org.example.a", "{}");
        await receiver.waitFor(before + 3);
        const got = receiver.changes.slice(before).filter((c) => c.type.startsWith("org.example."));
        expect(got.map((c) => [c.user_id, c.room_id, c.type, c.content])).toEqual([
            [alice.userId, null, "org.example.a", '{"v":1.0,"big":12345678901234567890}'],
            [alice.userId, room, "org.example.b", '{"\\u00e9":"\\ud83d\\ude00"}'],
            [alice.userId, null, "org.example.a", "{}"],
        ]);
        const seqs = receiver.changes.map((c) => c.seq);
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        expect(new Set(receiver.changes.map((c) => c.id)).size).toBe(receiver.changes.length);
        expect([...receiver.authHeaders]).toEqual(["Bearer stub-token"]);
        await expect.poll(() => outboxDepth(env), { timeout: 30_000 }).toBe(0);
    });

    it("keeps rows while the receiver is down, across a Synapse restart, and delivers them after", async () => {
        await receiver.stop();
        const before = receiver.changes.length;
        for (let n = 0; n < 20; n++) {
            await alice.setAccountData("org.example.queued", `{"n":${n}}`);
        }
        // Stopped right after the last answer, while its outbox write may still be pending: Synapse's
        // shutdown waits for it.
        await env.synapse.restart();
        expect(await outboxDepth(env)).toBe(20);

        await receiver.start();
        await receiver.waitFor(before + 20);
        const queued = receiver.changes.slice(before);
        expect(queued.map((c) => c.content)).toEqual(Array.from({ length: 20 }, (_, n) => `{"n":${n}}`));
        await expect.poll(() => outboxDepth(env), { timeout: 30_000 }).toBe(0);
    });
});
