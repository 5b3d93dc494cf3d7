/** The e2e tests' own small HTTP servers (taps and fakes between our processes): listening and closing. */
import type { Server } from "node:http";

/** Listens on a port the kernel picks on loopback (bound here, by its user, never handed over) and reads it. */
export async function listenOnFreePort(server: Server): Promise<number> {
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (typeof address !== "object" || !address) throw new Error("The server has no port");
    return address.port;
}

/** Closes the server and every connection it still has (held requests included). */
export async function closeServer(server: Server | null): Promise<void> {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
}
