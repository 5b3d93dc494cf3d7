import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import type { Socket } from "node:net";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

/**
 * Ports for the dev env's servers, reserved so that no other process can take them between being chosen and
 * being bound, nor while the server that owns one is down (a restart, an outage test).
 *
 * A small helper process (the "keeper", one per test process) binds a TCP socket to 127.0.0.1 port 0 with
 * SO_REUSEADDR, reads back the port the kernel chose and keeps that socket bound, without listening, until
 * the port is released or the test process ends. While it is bound:
 * - the kernel never hands the port out to anyone else: a port-0 bind (another run's probe) and the source port
 *   of an outgoing connection both skip ports that have a bound socket;
 * - a process binding it explicitly without SO_REUSEADDR is refused;
 * - our servers still bind and listen on it: Node (libuv) and Synapse (Twisted) set SO_REUSEADDR on listening
 *   sockets, and Linux lets a reusable socket bind beside a reusable one that is not listening. Only one of
 *   them can listen at a time (a second listener is refused, as usual), and while none listens a connection is
 *   refused, exactly as if the port were free.
 * Node cannot bind a TCP socket without listening (a listening keeper would take the connections), hence a
 * Python helper; Python is there wherever Synapse is.
 */
const KEEPER_SOURCE = `
import socket, sys
held = {}
for line in sys.stdin:
    verb, _, arg = line.strip().partition(" ")
    if verb == "reserve":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        held[s.getsockname()[1]] = s
        print(s.getsockname()[1], flush=True)
    elif verb == "release":
        s = held.pop(int(arg), None)
        if s is not None:
            s.close()
        print("released", flush=True)
`;

const PROJECT_ROOT = resolve(import.meta.dirname, "..", "..");

function keeperPython(): string {
    const venvPython = join(resolve(PROJECT_ROOT, process.env.AUDIT_VENV ?? ".venv"), "bin", "python");
    return existsSync(venvPython) ? venvPython : (process.env.PYTHON ?? "python3");
}

/** The keeper process and its answers, one line per request, in order. */
class PortKeeper {
    private child: ChildProcess | null = null;
    private readonly waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];

    private start(): ChildProcess {
        // Its stdin closes when this process exits, however it exits: the keeper then ends, freeing every port.
        const child = spawn(keeperPython(), ["-c", KEEPER_SOURCE], { stdio: ["pipe", "pipe", "inherit"] });
        child.unref();
        (child.stdin as unknown as Socket).unref();
        (child.stdout as unknown as Socket).unref();
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
            this.waiting.shift()?.resolve(line);
            this.refWhileWaiting();
        });
        const fail = (why: string): void => {
            if (this.child === child) this.child = null;
            for (const waiter of this.waiting.splice(0)) waiter.reject(new Error(`The port keeper ${why}`));
        };
        child.on("error", (err) => fail(`could not run: ${err.message}`));
        child.on("exit", (code, signal) => fail(`exited (code ${code}, signal ${signal})`));
        this.child = child;
        return child;
    }

    /** Keeps this process alive while an answer is awaited, and only then. */
    private refWhileWaiting(): void {
        const stdout = this.child?.stdout as unknown as Socket | undefined;
        if (this.waiting.length > 0) stdout?.ref();
        else stdout?.unref();
    }

    public ask(request: string): Promise<string> {
        const child = this.child ?? this.start();
        return new Promise((resolve, reject) => {
            this.waiting.push({ resolve, reject });
            this.refWhileWaiting();
            child.stdin?.write(`${request}\n`);
        });
    }
}

const keeper = new PortKeeper();

export interface PortReservation {
    readonly port: number;
    /** Lets the port go (once its server is gone for good). */
    release(): Promise<void>;
}

/** A port on 127.0.0.1 that nobody else gets until it is released (see PortKeeper above). */
export async function reservePort(): Promise<PortReservation> {
    const answer = await keeper.ask("reserve");
    const port = Number(answer);
    if (!Number.isInteger(port) || port <= 0) throw new Error(`The port keeper answered ${JSON.stringify(answer)}`);
    let released = false;
    return {
        port,
        release: async () => {
            if (released) return;
            released = true;
            await keeper.ask(`release ${port}`);
        },
    };
}

/**
 * A port on 127.0.0.1 for a server of the caller's, reserved for the rest of this process (it is never handed
 * to anyone else, and the caller's server binds it whenever it likes). Prefer reservePort() where the port's
 * end is known.
 */
export async function freePort(): Promise<number> {
    return (await reservePort()).port;
}

/** Whether a server's output says it could not bind its port because another socket listens there. */
export function saysAddressInUse(output: string): boolean {
    return /EADDRINUSE|Address already in use/.test(output);
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
