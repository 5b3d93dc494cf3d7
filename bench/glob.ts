/**
 * Policy globs on adversarial account-data types: the backtracking regular expression the policy used before
 * against the matcher of src/modules/audit/Glob.ts. `node bench/glob.ts`. A regular expression cannot be
 * interrupted, so the old matcher runs in a worker that is terminated after OLD_DEADLINE_MS, and is not tried
 * on longer types once it has been.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { GlobSet } from "../src/modules/audit/Glob.ts";

const OLD_DEADLINE_MS = 3000;

/** The policy's former matcher, verbatim. */
function oldGlobToRegExp(glob: string): RegExp {
    let source = "";
    for (const char of glob) {
        if (char === "*") source += "[\\s\\S]*";
        else if (char === "?") source += "[\\s\\S]";
        else source += char.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    }
    return new RegExp(`^${source}$`, "u");
}

/** Milliseconds per call of the old matcher, or null if it did not finish within the deadline. */
async function timeOld(glob: string, value: string): Promise<number | null> {
    // This file again, as the worker below the main program.
    const worker = new Worker(new URL(import.meta.url), { workerData: { glob, value } });
    const timer = setTimeout(() => void worker.terminate(), OLD_DEADLINE_MS);
    try {
        return await new Promise<number | null>((resolve, reject) => {
            worker.once("message", resolve);
            worker.once("error", reject);
            worker.once("exit", () => resolve(null));
        });
    } finally {
        clearTimeout(timer);
        await worker.terminate();
    }
}

/** Milliseconds per call: the best of a few runs, each at least a few milliseconds long. */
function time(match: () => boolean): number {
    let best = Infinity;
    for (let run = 0; run < 5; run++) {
        let calls = 0;
        const start = performance.now();
        let elapsed: number;
        do {
            match();
            calls++;
            elapsed = performance.now() - start;
        } while (elapsed < 5);
        best = Math.min(best, elapsed / calls);
        if (elapsed > 1000) break;
    }
    return best;
}

const CASES: [glob: string, unit: string][] = [
    ["*.*.*.key", "."],
    ["*a*a*a*a*b", "a"],
    ["*.*.*.*.*.*.*.*.key", "."],
];
const LENGTHS = [25, 50, 100, 200, 400, 800, 1600, 3200, 16 * 1024, 1024 * 1024];

function format(ms: number | null | undefined): string {
    if (ms === undefined) return "-".padStart(12);
    if (ms === null) return `> ${OLD_DEADLINE_MS / 1000} s`.padStart(12);
    return (ms >= 1 ? `${ms.toFixed(1)} ms` : `${(ms * 1000).toFixed(1)} µs`).padStart(12);
}

async function main(): Promise<void> {
    const write = (line: string): boolean => process.stdout.write(`${line}\n`);
    write(`node ${process.version}; best of 5 runs, per match`);
    for (const [glob, unit] of CASES) {
        write(`\n${glob} against a type of n "${unit}"`);
        write(`${"n".padStart(8)} ${"regex (old)".padStart(12)} ${"Glob.ts".padStart(12)}`);
        const set = new GlobSet([glob]);
        let oldTimedOut = false;
        for (const n of LENGTHS) {
            const value = unit.repeat(n);
            const oldMs = oldTimedOut ? undefined : await timeOld(glob, value);
            if (oldMs === null) oldTimedOut = true;
            write(`${String(n).padStart(8)} ${format(oldMs)} ${format(time(() => set.matches(value)))}`);
        }
    }
}

if (isMainThread) {
    await main();
} else {
    const { glob, value } = workerData as { glob: string; value: string };
    const regex = oldGlobToRegExp(glob);
    parentPort?.postMessage(time(() => regex.test(value)));
}
