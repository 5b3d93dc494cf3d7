/**
 * The dev env's ports (src/devenv/net.ts): reserved from the moment they are chosen until the environment is
 * gone, so no other process can take one while its server is down; and a first start that finds a port taken
 * anyway (by a process that bound it before it was reserved) moves to fresh ports instead of failing.
 */
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { httpOk, reservePort } from "../../src/devenv/net.js";
import { SynapseHomeserver, VENV } from "../../src/devenv/Synapse.js";
import { createTestEnv, startAppserviceMovingIfTaken, type TestEnv } from "../../src/devenv/TestEnv.js";
import { DATABASE } from "./helpers.js";

/** What a process that simply binds the port (no SO_REUSEADDR) gets: "bound" or the error's name. */
function plainBind(port: number): string {
    const script = [
        "import socket, sys",
        "s = socket.socket()",
        "try:",
        "    s.bind(('127.0.0.1', int(sys.argv[1]))); print('bound')",
        "except OSError as e:",
        "    print(__import__('errno').errorcode[e.errno])",
    ].join("\n");
    return execFileSync(join(VENV, "bin", "python"), ["-c", script, String(port)], { encoding: "utf8" }).trim();
}

/** A server listening on `port` (another process's, or standing in for ours). */
async function squat(port: number): Promise<Server> {
    // Connections are dropped at once (a kept one would hold up close()).
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve());
    });
    return server;
}

describe(`ports of the dev env (${DATABASE})`, () => {
    let env: TestEnv | undefined;
    let squatter: Server | undefined;
    afterEach(async () => {
        await env?.tearDown();
        env = undefined;
        await new Promise((resolve) => (squatter ? squatter.close(resolve) : resolve(undefined)));
        squatter = undefined;
    });

    it("a reserved port refuses other binds until released, while our own server can listen on it", async () => {
        const reservation = await reservePort();
        try {
            expect(plainBind(reservation.port)).toBe("EADDRINUSE");
            const ours = await squat(reservation.port); // what our Synapse or appservice does
            await new Promise((resolve) => ours.close(resolve));
            expect(plainBind(reservation.port)).toBe("EADDRINUSE"); // its server gone, still reserved
        } finally {
            await reservation.release();
        }
        expect(plainBind(reservation.port)).toBe("bound");
    });

    it("the appservice's port stays reserved while it is down, and it listens there again after a restart", async () => {
        env = await createTestEnv({ database: DATABASE });
        const port = env.appservice.port;
        expect(plainBind(port)).toBe("EADDRINUSE"); // while it listens
        await env.appservice.stop("SIGKILL");
        expect(await httpOk(`http://127.0.0.1:${port}/health`).catch(() => false)).toBe(false);
        expect(plainBind(port)).toBe("EADDRINUSE"); // while nobody listens: still reserved
        expect(plainBind(env.synapse.port)).toBe("EADDRINUSE");
        await env.appservice.start();
        expect(env.appservice.port).toBe(port);
        const alice = await env.newUser("alice");
        await alice.setAccountData("org.example.after_restart", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after_restart"));
    });

    it("Synapse's first start moves off a port another process listens on", async () => {
        const dir = join((await import("node:os")).tmpdir(), `account-data-audit-ports-${process.pid}`);
        const synapse = new SynapseHomeserver({ dir, database: DATABASE });
        try {
            await synapse.writeConfig();
            const taken = synapse.port;
            squatter = await squat(taken);
            await synapse.start();
            expect(synapse.port).not.toBe(taken);
            expect(await httpOk(`${synapse.baseUrl}/health`)).toBe(true);
        } finally {
            await synapse.destroy();
            await (await import("node:fs/promises")).rm(dir, { recursive: true, force: true });
        }
    });

    it("the appservice's first start moves off a port another process listens on, and the trail works there", async () => {
        env = await createTestEnv({ database: DATABASE, startAppservice: false });
        const taken = env.appservice.port;
        squatter = await squat(taken);
        await startAppserviceMovingIfTaken(env);
        expect(env.appservice.port).not.toBe(taken);
        expect(env.registration.getAppServiceUrl()).toBe(`http://127.0.0.1:${env.appservice.port}`);
        await env.auditor.catchUp();
        const alice = await env.newUser("alice");
        await alice.setAccountData("org.example.moved", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.moved"));
    });
});
