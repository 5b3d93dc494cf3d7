import { createServer } from "node:net";

/** A TCP port that is free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const address = server.address();
            server.close(() =>
                typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
            );
        });
    });
}

/**
 * Calls `probe` until it returns true, the deadline passes, or `failed()` reports that the awaited process
 * died. Used for readiness endpoints (an explicit signal), never as a sleep standing in for one.
 */
export async function waitUntil(
    what: string,
    probe: () => Promise<boolean>,
    timeoutMs: number,
    failed: () => string | null = () => null,
): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const failure = failed();
        if (failure) throw new Error(`${what}: ${failure}`);
        if (await probe().catch(() => false)) return;
        if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
}

export async function httpOk(url: string): Promise<boolean> {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.ok;
}
