/** A fake homeserver at the HTTP level: scripted answers to PUT /send, recording every request. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Recorded {
    method: string;
    url: string;
    body: unknown;
}

export type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | "hang-up";

export class FakeHomeserver {
    public readonly requests: Recorded[] = [];
    private readonly answers: Answer[] = [];
    private server: Server | null = null;
    public url = "";

    /** Queues answers; once they run out, every send succeeds. */
    public script(...answers: Answer[]): void {
        this.answers.push(...answers);
    }

    public async start(): Promise<void> {
        this.server = createServer((req, res) => void this.handle(req, res));
        await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    }

    public async stop(): Promise<void> {
        this.server?.closeAllConnections();
        await new Promise((resolve) => this.server?.close(resolve));
    }

    private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        let text = "";
        for await (const chunk of req) text += chunk;
        this.requests.push({ method: req.method ?? "", url: req.url ?? "", body: text ? JSON.parse(text) : null });
        const answer = this.answers.shift() ?? { status: 200, body: { event_id: `$e${this.requests.length}` } };
        if (answer === "hang-up") {
            req.socket.destroy();
            return;
        }
        const isJson = typeof answer.body === "object";
        res.writeHead(answer.status, { "Content-Type": isJson ? "application/json" : "text/html", ...answer.headers });
        res.end(isJson ? JSON.stringify(answer.body) : String(answer.body ?? ""));
    }

    public sendTxnIds(): string[] {
        return this.requests.map((r) => decodeURIComponent(r.url.split("?")[0]?.split("/").pop() ?? ""));
    }
}
