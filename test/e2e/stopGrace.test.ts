/**
 * An admin's stop (SIGTERM, as systemd sends it) does not wait for a homeserver that stopped answering: the
 * appservice leaves within its grace (STOP_GRACE_MS, 10 s), the change it was posting stays in the outbox, and
 * the next start posts it exactly once, also when the frozen send reached the homeserver after all.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { closeServer, listenOnFreePort } from "./localServer.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, outboxDepth, type TestEnv } from "../../src/devenv/TestEnv.js";
import { DATABASE } from "./helpers.js";

interface HeldSend {
    method: string;
    url: string;
    headers: Record<string, string>;
    body: Buffer;
    res: ServerResponse;
}

/** Passes the appservice's requests on to the homeserver; while frozen, keeps its event sends unanswered. */
class FreezableHomeserver {
    public readonly held: HeldSend[] = [];
    private frozen = false;
    private server: Server | null = null;
    private onHeld: (() => void) | null = null;
    public port = 0;

    public constructor(private readonly target: string) {}

    public get url(): string {
        return `http://127.0.0.1:${this.port}`;
    }

    public async start(): Promise<void> {
        const server = createServer((req, res) => void this.pass(req, res));
        this.port = await listenOnFreePort(server);
        this.server = server;
    }

    public freeze(): void {
        this.frozen = true;
    }

    /** Resolves once a send is held; rejects after `timeoutMs`. */
    public sendHeld(timeoutMs = 30_000): Promise<void> {
        if (this.held.length > 0) return Promise.resolve();
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error("No event send was held")), timeoutMs);
            this.onHeld = () => {
                clearTimeout(timer);
                resolve();
            };
        });
    }

    /** Sends the held requests on to the homeserver (their senders are gone: the answers go nowhere). */
    public async thaw(): Promise<number> {
        this.frozen = false;
        const held = this.held.splice(0);
        for (const send of held) {
            await fetch(this.target + send.url, { method: send.method, headers: send.headers, body: send.body });
            send.res.socket?.destroy();
        }
        return held.length;
    }

    public async stop(): Promise<void> {
        const server = this.server;
        this.server = null;
        await closeServer(server);
    }

    private async pass(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(req.headers)) {
            if (typeof value === "string" && !["host", "connection", "content-length"].includes(name)) {
                headers[name] = value;
            }
        }
        const send = { method: req.method ?? "GET", url: req.url ?? "/", headers, body: Buffer.concat(chunks), res };
        if (this.frozen && req.method === "PUT" && send.url.includes("/send/")) {
            this.held.push(send);
            this.onHeld?.();
            return;
        }
        try {
            const answer = await fetch(this.target + send.url, {
                method: send.method,
                headers,
                body: ["GET", "HEAD"].includes(send.method) ? undefined : send.body,
            });
            res.writeHead(answer.status, { "Content-Type": answer.headers.get("content-type") ?? "application/json" });
            res.end(Buffer.from(await answer.arrayBuffer()));
        } catch {
            res.socket?.destroy();
        }
    }
}

describe(`stopping while the homeserver does not answer (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;
    let homeserver: FreezableHomeserver;

    beforeAll(async () => {
        env = await createTestEnv({ database: DATABASE });
        alice = await env.newUser("alice");
        homeserver = new FreezableHomeserver(env.synapse.baseUrl);
        await homeserver.start();
        const config = env.appserviceConfig as { homeserver: Record<string, unknown> };
        await env.writeAppserviceConfig({ ...config, homeserver: { ...config.homeserver, url: homeserver.url } });
        await env.appservice.stop();
        await env.appservice.start();
        await env.auditor.catchUp();
    });
    afterAll(async () => {
        await env?.tearDown();
        await homeserver?.stop();
    });

    it("leaves within its grace, and the next start posts the change exactly once", async () => {
        await alice.setAccountData("org.example.before", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.before"));

        homeserver.freeze();
        await alice.setAccountData("org.example.frozen", '{"n":1}');
        await homeserver.sendHeld();

        const stopping = Date.now();
        await env.appservice.stop();
        const stopMs = Date.now() - stopping;
        process.stderr.write(`stop with a frozen send: ${stopMs} ms\n`);
        expect(stopMs).toBeLessThan(15_000);
        expect(env.appservice.output).toContain("Stopping with a batch unfinished");
        expect(await outboxDepth(env)).toBe(1);

        // The frozen send reaches the homeserver after all; the restart sends it again with the same transaction
        // ID, and the homeserver answers with the same event.
        expect(await homeserver.thaw()).toBe(1);
        await env.appservice.start();
        await alice.setAccountData("org.example.after", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after"));
        await env.auditor.syncOnce(0);
        const frozen = env.auditor.bodies().filter((b) => b.includes("org.example.frozen"));
        expect(frozen).toEqual([
            `${alice.userId} has changed their account data for type org.example.frozen to: {"n": 1}`,
        ]);
        expect((await env.verify()).code).toBe(0);
    });
});
