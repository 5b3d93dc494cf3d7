/** Small helpers for the benchmark's figures. */

export interface Percentiles {
    n: number;
    p50: number;
    p95: number;
    p99: number;
    mean: number;
}

export function percentiles(samples: number[]): Percentiles {
    const sorted = [...samples].sort((a, b) => a - b);
    const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
    const round = (x: number): number => Math.round(x * 100) / 100;
    const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length);
    return { n: sorted.length, p50: round(at(0.5)), p95: round(at(0.95)), p99: round(at(0.99)), mean: round(mean) };
}

/** Runs `task(i)` for i in [0, total) with `concurrency` workers; returns each task's duration in ms. */
export async function timed(
    total: number,
    concurrency: number,
    task: (i: number) => Promise<unknown>,
): Promise<number[]> {
    const durations: number[] = [];
    let next = 0;
    await Promise.all(
        Array.from({ length: concurrency }, async () => {
            while (next < total) {
                const i = next++;
                const started = performance.now();
                await task(i);
                durations.push(performance.now() - started);
            }
        }),
    );
    return durations;
}

export function log(line: string): void {
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}
