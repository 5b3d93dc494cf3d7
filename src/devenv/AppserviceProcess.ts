/** The appservice as admins run it: `node lib/main.js -c config.yaml -f registration.yaml`, in a child process. */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { httpOk, waitUntil } from "./net.js";
import { PROJECT_ROOT } from "./Synapse.js";

export const MAIN_JS = join(PROJECT_ROOT, "lib", "main.js");

/**
 * The V8 heap settings the appservice runs with (README, "Benchmark"; src/main.ts's first line): a young
 * generation of 2 × 8 MB instead of V8's default maximum (2 × 64 MB on a machine with some GB of memory, reached
 * as the bytes that survive its scavenges add up), the old generation collected once it is 1.2× what was live
 * after the last full collection instead of up to 4×, and V8's size-over-speed choices. Without them RSS grows
 * with the work done, to some 270 MB over a drain of 100,000 changes, while the live heap stays at 27 MB.
 */
export const NODE_HEAP_FLAGS = ["--max-semi-space-size=8", "--heap-growing-percent=20", "--optimize-for-size"];

export class AppserviceProcess {
    private process: ChildProcess | null = null;
    private exitInfo: string | null = null;
    public output = "";

    public constructor(
        private readonly configPath: string,
        private readonly registrationPath: string,
        /** Where it listens (config.yaml's listen.port): a port reserved by the environment (see net.ts). */
        public port: number,
    ) {}

    private spawnMain(): ChildProcess {
        this.exitInfo = null;
        this.output = "";
        const child = spawn(
            process.execPath,
            [...NODE_HEAP_FLAGS, MAIN_JS, "-c", this.configPath, "-f", this.registrationPath],
            {
                stdio: ["ignore", "pipe", "pipe"],
            },
        );
        const collect = (chunk: Buffer): void => {
            this.output = (this.output + chunk.toString()).slice(-50_000);
        };
        child.stdout?.on("data", collect);
        child.stderr?.on("data", collect);
        child.on("exit", (code, signal) => {
            this.exitInfo = `appservice exited (code ${code}, signal ${signal}):\n${this.output}`;
            if (this.process === child) this.process = null;
        });
        this.process = child;
        return child;
    }

    /** Starts it and resolves once it listens (it listens only after joining the audit room). */
    public async start(timeoutMs = 60_000): Promise<void> {
        this.spawnMain();
        await waitUntil(
            "the appservice to start",
            () => httpOk(`http://127.0.0.1:${this.port}/health`),
            timeoutMs,
            () => this.exitInfo,
        );
    }

    /** Runs it expecting it to refuse to start; resolves with its exit code and output. */
    public runToExit(timeoutMs = 60_000): Promise<{ code: number | null; output: string }> {
        const child = this.spawnMain();
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                child.kill("SIGKILL");
                reject(new Error(`appservice did not exit within ${timeoutMs} ms:\n${this.output}`));
            }, timeoutMs);
            child.once("exit", (code) => {
                clearTimeout(timer);
                resolve({ code, output: this.output });
            });
        });
    }

    public get pid(): number | undefined {
        return this.process?.pid;
    }

    public get running(): boolean {
        return this.process !== null;
    }

    /**
     * Sends `signal` and waits for the exit; one that ignores SIGTERM for 30 s is killed and reported (else a
     * hung shutdown would hold up the test's teardown until its hook timed out, and leave the process behind).
     */
    public async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
        const child = this.process;
        if (!child) return;
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        child.kill(signal);
        let hung = false;
        const timer = setTimeout(() => {
            hung = true;
            child.kill("SIGKILL");
        }, 30_000);
        await exited;
        clearTimeout(timer);
        if (hung)
            throw new Error(`The appservice did not exit within 30 s of ${signal}; it was killed:\n${this.output}`);
    }
}
