/**
 * A tap between the host module and the appservice: the host module's `appservice_url` points here, and every
 * batch is passed on to the appservice and its answer back. The tap records each batch's seqs and the answer,
 * and can hold the answers back: the appservice then has handled (posted) a batch whose acknowledgement the host
 * module never gets, which is the moment a replay has to be proven from.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { closeServer, listenOnFreePort } from "./localServer.js";

export interface TappedBatch {
    /** The seqs the batch carried, in order. */
    seqs: number[];
    /** The digest groups it carried (`digest_group`: the first seq of each), with their sizes. */
    groups: Map<number, number>;
    /** The appservice's answer (null: it could not be reached). */
    status: number | null;
    answer: Record<string, unknown> | null;
    /** Whether the answer was held back from the host module. */
    held: boolean;
}

export class DeliveryTap {
    public readonly batches: TappedBatch[] = [];
    private server: Server | null = null;
    private holding = false;
    private holdFrom: ((batch: TappedBatch) => boolean) | null = null;
    private readonly heldResponses: ServerResponse[] = [];
    private readonly listeners: (() => void)[] = [];
    public port = 0;

    /** `target`: the appservice's base URL, read at every batch. */
    public constructor(private readonly target: () => string) {}

    public get url(): string {
        return `http://127.0.0.1:${this.port}`;
    }

    /** Listens on a port the kernel picks (bound here, by its user, never handed over) and reads it back. */
    public async start(): Promise<void> {
        const server = createServer((req, res) => void this.pass(req, res));
        this.port = await listenOnFreePort(server);
        this.server = server;
    }

    /**
     * From the first batch `from` accepts (default: the next one) on, the appservice's answers are kept from the
     * host module; the batches are still handled.
     */
    public hold(from: (batch: TappedBatch) => boolean = () => true): void {
        this.holdFrom = from;
    }

    /**
     * Closes the connections of the held batches unanswered (their acknowledgements are lost, as when the
     * appservice dies after posting) and passes later answers on again. Returns how many were held.
     */
    public dropHeld(): number {
        this.holding = false;
        this.holdFrom = null;
        const count = this.heldResponses.length;
        for (const res of this.heldResponses.splice(0)) res.socket?.destroy();
        return count;
    }

    /** Resolves once `predicate` holds for the batches recorded so far; rejects after `timeoutMs`. */
    public waitFor(what: string, predicate: (batches: TappedBatch[]) => boolean, timeoutMs = 60_000): Promise<void> {
        return new Promise((resolve, reject) => {
            const check = (): boolean => {
                if (!predicate(this.batches)) return false;
                clearTimeout(timer);
                this.listeners.splice(this.listeners.indexOf(listener), 1);
                resolve();
                return true;
            };
            const listener = (): void => void check();
            const timer = setTimeout(() => {
                this.listeners.splice(this.listeners.indexOf(listener), 1);
                reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`));
            }, timeoutMs);
            this.listeners.push(listener);
            check();
        });
    }

    public async stop(): Promise<void> {
        this.dropHeld();
        const server = this.server;
        this.server = null;
        await closeServer(server);
    }

    private async pass(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        const body = Buffer.concat(chunks);
        let seqs: number[] = [];
        const groups = new Map<number, number>();
        try {
            const parsed = JSON.parse(body.toString("utf8")) as {
                changes?: { seq?: unknown; digest_group?: unknown }[];
            };
            seqs = (parsed.changes ?? []).map((c) => Number(c.seq));
            for (const change of parsed.changes ?? []) {
                if (typeof change.digest_group !== "number") continue;
                groups.set(change.digest_group, (groups.get(change.digest_group) ?? 0) + 1);
            }
        } catch {
            // Not a batch: passed on as it is.
        }
        const batch: TappedBatch = { seqs, groups, status: null, answer: null, held: false };
        if (this.holdFrom?.(batch)) {
            this.holding = true;
            this.holdFrom = null;
        }
        const headers: Record<string, string> = {};
        for (const name of ["authorization", "content-type"]) {
            const value = req.headers[name];
            if (typeof value === "string") headers[name] = value;
        }
        let upstream: Response;
        try {
            upstream = await fetch(`${this.target()}${req.url ?? "/"}`, {
                method: req.method,
                headers,
                body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
            });
        } catch {
            // The appservice is down: to the host module this looks like a refused connection.
            this.record(batch);
            res.socket?.destroy();
            return;
        }
        const text = await upstream.text();
        let answer: Record<string, unknown> | null;
        try {
            answer = JSON.parse(text) as Record<string, unknown>;
        } catch {
            answer = null;
        }
        Object.assign(batch, { status: upstream.status, answer, held: this.holding });
        this.record(batch);
        if (batch.held) {
            this.heldResponses.push(res);
            return;
        }
        res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "application/json" });
        res.end(text);
    }

    private record(batch: TappedBatch): void {
        this.batches.push(batch);
        for (const listener of [...this.listeners]) listener();
    }
}
