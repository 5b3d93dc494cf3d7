/** One Synapse process (the main process or a worker): started, awaited on its /health, stopped with a signal. */
import { type ChildProcess, spawn } from "node:child_process";
import { httpOk, waitUntil } from "./net.js";

export class SynapseProcess {
    private process: ChildProcess | null = null;
    private exitInfo: string | null = null;

    public constructor(
        private readonly name: string,
        private readonly command: string,
        private readonly args: string[],
        private readonly env: () => NodeJS.ProcessEnv,
        private readonly healthUrl: () => string,
        private readonly logTail: () => string,
    ) {}

    public get pid(): number | undefined {
        return this.process?.pid;
    }

    public get running(): boolean {
        return this.process !== null;
    }

    /** Starts it and resolves when its /health answers; rejects with its output and log if it exits first. */
    public async start(timeoutMs = 120_000): Promise<void> {
        this.exitInfo = null;
        const child = spawn(this.command, this.args, { env: this.env(), stdio: ["ignore", "pipe", "pipe"] });
        let output = "";
        const collect = (chunk: Buffer): void => {
            output = (output + chunk.toString()).slice(-20_000);
        };
        child.stdout?.on("data", collect);
        child.stderr?.on("data", collect);
        child.on("exit", (code, signal) => {
            this.exitInfo = `${this.name} exited (code ${code}, signal ${signal}).\n${output}\n${this.logTail()}`;
            if (this.process === child) this.process = null;
        });
        this.process = child;
        await waitUntil(
            `${this.name} to start`,
            () => httpOk(this.healthUrl()),
            timeoutMs,
            () => this.exitInfo,
        );
    }

    /** Sends `signal` and waits for the exit; a process that ignores SIGTERM for 30 s is killed and reported. */
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
        this.process = null;
        // A module that holds up Synapse's shutdown is a bug an admin would hit on every restart.
        if (hung) throw new Error(`${this.name} did not exit within 30 s of ${signal}; it was killed`);
    }
}
