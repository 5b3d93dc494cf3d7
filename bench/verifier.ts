/**
 * `npm run bench:verify`: the verifier on big trails, without a homeserver. A synthetic room of 1,000,000 chained
 * v2 records (built one event at a time, never held at once, as the room is read page by page) goes through
 * TrailVerifier: time and peak RSS. Then an incremental run, as `verify --state` does: 1,000 new records after
 * the first run's resume point. `--quick` runs 20,000 records. Writes bench/results/verifier.json.
 */
import "../lib/quietDependencies.js";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RoomEvent } from "../lib/devenv/MatrixHttp.js";
import { PROJECT_ROOT } from "../lib/devenv/Synapse.js";
import { auditMessageBody } from "../lib/modules/audit/Messages.js";
import { RECORD_KEY } from "../lib/modules/audit/Record.js";
import { GENESIS, recordHashV2 } from "../lib/verify/Chain.js";
import { TrailVerifier } from "../lib/verify/Verifier.js";
import { round2 } from "./burst.ts";
import { log } from "./stats.ts";

const QUICK = process.argv.includes("--quick");
const RECORDS = QUICK ? 20_000 : 1_000_000;
const INCREMENT = 1_000;
const SENDER = "@audit:bench.test";
const USER = "@alice:bench.test";

/** The events of a trail of chained v2 records, one at a time, as the appservice posts them (full level). */
function* trail(from: number, to: number, start: { prev: string }): Generator<RoomEvent> {
    for (let seq = from; seq <= to; seq++) {
        const content = `{"n":${seq},"theme":"dark"}`;
        const salt = createHash("md5").update(String(seq)).digest("hex");
        const commitment = `sha256:${createHash("sha256")
            .update(salt + content)
            .digest("hex")}`;
        const keyed = createHash("sha256").update(`k${seq}`).digest("hex");
        const ts = 1_700_000_000_000 + seq;
        const link = { seq, changeId: `c${seq}`, ts, kind: "change", userId: USER, roomId: null, type: "m.t" };
        const hash = recordHashV2({
            ...link,
            contentSize: content.length,
            commitment,
            keyedDigest: keyed,
            prevHash: start.prev,
        });
        const record = {
            version: 1,
            kind: "change",
            seq,
            change_id: `c${seq}`,
            ts,
            user_id: USER,
            room_id: null,
            type: "m.t",
            level: "full",
            recovered: false,
            content_size: content.length,
            content_digest: `sha256:${createHash("sha256").update(content).digest("hex")}`,
            content,
            commitment,
            content_salt: salt,
            chain_version: 2,
            keyed_digest: keyed,
            prev_hash: start.prev,
            hash,
            prev_posted: { seq: seq - 1, hash: start.prev },
        };
        start.prev = hash;
        yield {
            event_id: `$e${seq}`,
            type: "m.room.message",
            sender: SENDER,
            origin_server_ts: ts,
            content: {
                msgtype: "m.text",
                body: auditMessageBody(USER, null, "m.t", `{"n": ${seq}, "theme": "dark"}`),
                [RECORD_KEY]: record,
            },
        };
    }
}

/** Live heap after a full collection, where the bench runs with --expose-gc (what the verifier keeps). */
function liveHeapMb(): number | null {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) return null;
    gc();
    return Math.round(process.memoryUsage().heapUsed / 1024 / 102.4) / 10;
}

function rssMb(): number {
    return Math.round(process.memoryUsage().rss / 1024 / 102.4) / 10;
}

function run(
    events: Iterable<RoomEvent>,
    verifier: TrailVerifier,
): { seconds: number; peakRssMb: number; liveHeapMbAtEnd: number | null } {
    const started = performance.now();
    let peak = rssMb();
    let n = 0;
    for (const event of events) {
        verifier.add(event);
        if (++n % 10_000 === 0) peak = Math.max(peak, rssMb());
    }
    const live = liveHeapMb();
    const report = verifier.finish();
    if (!report.intact) throw new Error(`The synthetic trail should be intact: ${JSON.stringify(report.problems[0])}`);
    return {
        seconds: round2((performance.now() - started) / 1000),
        peakRssMb: Math.max(peak, rssMb()),
        liveHeapMbAtEnd: live,
    };
}

const chain = { prev: GENESIS };
const startRss = rssMb();
log(`Verifier: ${RECORDS} synthetic records (RSS at start ${startRss} MB)`);
const full = new TrailVerifier(SENDER, { maxAgeMs: null, settleMs: 0 });
const whole = run(trail(1, RECORDS, chain), full);
log(
    `  ${RECORDS} records in ${whole.seconds} s (${Math.round(RECORDS / whole.seconds)}/s), peak RSS ${whole.peakRssMb} MB`,
);
const resume = full.resumePoint();
if (resume === null) throw new Error("No resume point after the first run");
const incremental = new TrailVerifier(SENDER, { after: resume.verified });
const more = run(trail(RECORDS + 1, RECORDS + INCREMENT, chain), incremental);
log(`  incremental: ${INCREMENT} new records in ${more.seconds} s`);
const result = {
    when: new Date().toISOString(),
    records: RECORDS,
    startRssMb: startRss,
    full: { ...whole, perSecond: Math.round(RECORDS / whole.seconds) },
    incremental: { records: INCREMENT, seconds: more.seconds },
};
if (!QUICK)
    writeFileSync(join(PROJECT_ROOT, "bench", "results", "verifier.json"), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
