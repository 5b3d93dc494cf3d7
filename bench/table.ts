/** Prints bench/results/latest.json as the Markdown table README.md shows (`node bench/table.ts`). */
import { readFileSync } from "node:fs";

const r = JSON.parse(readFileSync(new URL("./results/latest.json", import.meta.url), "utf8"));
const p = (x: { p50: number; p95: number; p99: number }): string => `${x.p50} / ${x.p95} / ${x.p99}`;
/** "10%: 230 ms, …", each other user's wait, marked where it shares the burst's lane. */
function fairnessPoints(others: { atChange: number; sameLaneAsBurst: boolean; waitMs: number }[]): string {
    return others.map((o) => `${o.atChange}: ${o.waitMs}${o.sameLaneAsBurst ? " same lane" : ""}`).join(", ");
}

const rows: string[][] = [
    [
        "PUT account data, sequential, setups in alternation: no module (p50 / p95 / p99 ms)",
        p(r.putLatencyMs.none.sequential),
    ],
    [
        "… seed's inline module",
        `${p(r.putLatencyMs.seed.sequential)} (adds ${r.addedLatencyMs.seed.sequentialP50} p50, ${r.addedLatencyMs.seed.sequentialP99} p99)`,
    ],
    [
        "… our module, appservice stopped (the callback alone)",
        `${p(r.putLatencyMs["ours-queued"].sequential)} (adds ${r.addedLatencyMs["ours-queued"].sequentialP50} p50, ${r.addedLatencyMs["ours-queued"].sequentialP99} p99)`,
    ],
    [
        "… our module, delivering at the same time (measured after, on its own)",
        `${p(r.putLatencyMs.ours.sequential)} (adds ${r.addedLatencyMs.ours.sequentialP50} p50, ${r.addedLatencyMs.ours.sequentialP99} p99)`,
    ],
    ["PUT at concurrency 20: no module", p(r.putLatencyMs.none.concurrent20)],
    [
        "… seed's inline module",
        `${p(r.putLatencyMs.seed.concurrent20)} (adds ${r.addedLatencyMs.seed.concurrentP50} p50)`,
    ],
    [
        "… our module, callback alone",
        `${p(r.putLatencyMs["ours-queued"].concurrent20)} (adds ${r.addedLatencyMs["ours-queued"].concurrentP50} p50)`,
    ],
    [
        "… our module, delivering",
        `${p(r.putLatencyMs.ours.concurrent20)} (adds ${r.addedLatencyMs.ours.concurrentP50} p50)`,
    ],
    [
        "Limit: raw appservice sends into one room, best concurrency that keeps the room healthy",
        `${r.sendLimitEventsPerSecond.best} events/s at ${r.sendLimitEventsPerSecond.bestConcurrency}; at any concurrency ${r.sendLimitEventsPerSecond.bestForking}/s`,
    ],
    ...Object.entries(
        r.sendLimitEventsPerSecond.byConcurrency as Record<
            string,
            { eventsPerSecond: number; forwardExtremitiesAfter: number; synapseCpuMsPerEvent: number }
        >,
    ).map(([c, x]) => [
        `… at concurrency ${c}`,
        `${x.eventsPerSecond} events/s, ${x.forwardExtremitiesAfter} forward extremities after, Synapse ${x.synapseCpuMsPerEvent} ms CPU/event`,
    ]),
    [
        "Throughput: 10,000 changes by 50 users, first PUT → last audit event",
        `${r.throughput.seconds} s, ${r.throughput.perSecond} records/s, ${r.throughput.ratioToLimit}× the limit; ${r.throughput.forwardExtremitiesAfter} forward extremities after`,
    ],
    [
        "… the PUTs alone (Synapse busy with them)",
        `${r.throughput.puts.seconds} s, Synapse ${r.throughput.puts.synapseCpuSeconds} s CPU`,
    ],
    [
        "… delivery alone (the backlog left when the last PUT returned)",
        `${r.throughput.drain.changes} in ${r.throughput.drain.seconds} s: ${r.throughput.drain.perSecond} records/s, ${r.throughput.drainRatioToLimit}× the limit, ${r.throughput.drainRatioToLimitAtConcurrency8}× raw sends at concurrency 8; Synapse ${r.throughput.drain.synapseCpuMsPerChange} ms CPU/change`,
    ],
    ...(r.scaleOut
        ? [
              [
                  "Digest mode: the same burst, first PUT → last audit record",
                  `${r.scaleOut.digest.burst.seconds} s, ${r.scaleOut.digest.burst.perSecond} records/s, ${r.scaleOut.digest.burstRatioToLimit}× the limit, in ${r.scaleOut.digest.burst.events} events`,
              ],
              [
                  "… last record after the last PUT",
                  `${r.scaleOut.digest.lastRecordAfterLastPutSeconds} s (${r.scaleOut.digest.burst.drain.changes} left when the PUTs were done)`,
              ],
              [
                  "… delivery alone: a queued backlog drained",
                  `${r.scaleOut.digest.drain.queued} in ${r.scaleOut.digest.drain.seconds} s: ${r.scaleOut.digest.drain.perSecond} records/s, ${r.scaleOut.digest.drainRatioToLimit}× the limit`,
              ],
              [
                  "Workers (account-data writer on a worker, digest mode): the same burst",
                  r.scaleOut.workers
                      ? `${r.scaleOut.workers.seconds} s, ${r.scaleOut.workers.perSecond} records/s; PUTs ${r.scaleOut.workers.puts.seconds} s; last record ${r.scaleOut.workers.drain.seconds} s after the last PUT`
                      : "not run (SQLite)",
              ],
              [
                  "verify on the room of the burst without digests",
                  `${r.scaleOut.verify.records} records in ${r.scaleOut.verify.seconds} s (${r.scaleOut.verify.intact ? "intact" : "NOT intact"})`,
              ],
          ]
        : []),
    [
        "Freshness at 10 changes/s, PUT 200 → auditor's /sync (p50 / p95 / p99 ms)",
        `${p(r.freshnessMs.audited)}; one raw send: ${p(r.freshnessMs.rawSend)}`,
    ],
    ...(r.fairness
        ? [
              [
                  `Fairness, default config: one user's ${r.fairness.burstChanges}-change burst; another user's single change, its PUT → the auditor's /sync (in the middle; max)`,
                  `${r.fairness.middleWaitMs} ms; ${r.fairness.maxWaitMs} ms (at ${fairnessPoints(r.fairness.others)})`,
              ],
              [
                  "… the burst itself",
                  `PUTs ${r.fairness.burstPutSeconds} s, last record ${r.fairness.lastRecordAfterLastPutSeconds} s after the last PUT, in ${r.fairness.events} events (digest mode ${r.fairness.digest.enabled ? "on" : "off"})`,
              ],
          ]
        : []),
    ...(r.fairnessHostile
        ? (
              [
                  ["longType", "changes of a 5,000-character type of control characters (each fills most of an event)"],
                  ["denseContent", "changes of a 1 MB array of zeros (the most values per byte)"],
              ] as const
          ).map(([key, what]) => {
              const f = r.fairnessHostile[key];
              return [
                  `… one user's ${f.burstChanges} ${what}; another user's single change (in the middle; max)`,
                  `${f.middleWaitMs} ms; ${f.maxWaitMs} ms (at ${fairnessPoints(f.others)}); the burst's last record ${f.lastRecordAfterLastPutSeconds} s after its last PUT`,
              ];
          })
        : []),
    [
        "Appservice peak RSS delivering the first 100 of 100 / of 100,000 queued",
        `${r.memory.small.peakRssMbFirst} MB / ${r.memory.large.peakRssMbFirst} MB (${r.memory.largeOverSmall}×)`,
    ],
    ...(r.memory.large.rssMbAt
        ? [
              [
                  `… RSS over the whole drain of the ${r.memory.large.queued.toLocaleString("en")}: after 1% / 50% / all delivered (end ÷ start; highest ÷ lowest)`,
                  `${r.memory.large.rssMbAt["0.01"]} / ${r.memory.large.rssMbAt["0.5"]} / ${r.memory.large.rssMbAt["1"]} MB (${r.memory.large.endOverStart}×; ${r.memory.large.maxOverMin}×), ${r.memory.large.drained} in ${r.memory.large.seconds} s`,
              ],
          ]
        : [
              [
                  "… over a longer drain of the 100,000",
                  `${r.memory.large.peakRssMb} MB after ${r.memory.large.drained} delivered in ${r.memory.large.seconds} s`,
              ],
          ]),
];
process.stdout.write(
    `Run ${r.date.slice(0, 16)}Z on ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB; Synapse ${r.synapse} on ${r.database}.\n\n` +
        "| measure | result |\n| --- | --- |\n" +
        rows.map(([a, b]) => `| ${a} | ${b} |`).join("\n") +
        "\n",
);
