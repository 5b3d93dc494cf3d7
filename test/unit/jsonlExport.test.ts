import { mkdtempSync, readdirSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EXPORT_KEY, parseLine } from "../../src/export/ExportLine.js";
import { JsonlSink } from "../../src/export/JsonlSink.js";
import { rotatedFiles } from "../../src/export/JsonlFile.js";
import { parseLossless, type LosslessObject } from "../../src/json/LosslessJson.js";
import type { AccountDataChange, AuditRecord, CheckpointRecord } from "../../src/modules/ModuleHost.js";
import { GENESIS, recordHash } from "../../src/verify/Chain.js";
import { EXPORT_SENDER, jsonlEvents } from "../../src/verify/JsonlReader.js";
import { TrailVerifier } from "../../src/verify/Verifier.js";

const ALICE = "@alice:example.org";
const HIDDEN = "m.fully_read";
const POLICY = {
    rules: [{ types: [HIDDEN], users: null, rooms: null, level: "none" as const }],
    secrets: "withhold" as const,
};

/** A chain of `count` v1 records (changes, with a checkpoint at seq 5), hashed as the host module does. */
function chain(count: number, hidden: number[] = []): AuditRecord[] {
    const records: AuditRecord[] = [];
    let prev = GENESIS;
    for (let seq = 1; seq <= count; seq++) {
        const base = { id: `c${seq}`, seq, ts: 1_700_000_000_000 + seq };
        if (seq === 5) {
            const hash = recordHash({
                ...base,
                changeId: base.id,
                kind: "checkpoint",
                userId: "",
                roomId: null,
                type: "",
                keyedDigest: null,
                prevHash: prev,
            });
            records.push({
                ...base,
                kind: "checkpoint",
                keyedDigest: null,
                chain: { prevHash: prev, hash },
            } as CheckpointRecord);
            prev = hash;
            continue;
        }
        const type = hidden.includes(seq) ? HIDDEN : "m.theme";
        const contentJson = `{"n":${seq},"f":1.0}`;
        const keyedDigest = seq.toString(16).padStart(64, "a");
        const hash = recordHash({
            ...base,
            changeId: base.id,
            kind: "change",
            userId: ALICE,
            roomId: null,
            type,
            keyedDigest,
            prevHash: prev,
        });
        const change: AccountDataChange = {
            ...base,
            kind: "change",
            recovered: false,
            contentJson,
            content: parseLossless(contentJson) as LosslessObject,
            keyedDigest,
            chain: { prevHash: prev, hash },
            userId: ALICE,
            roomId: null,
            type,
        };
        records.push(change);
        prev = hash;
    }
    return records;
}

function tempFile(): string {
    return join(mkdtempSync(join(tmpdir(), "jsonl-")), "audit.jsonl");
}

async function sink(path: string, rotateBytes = 0): Promise<JsonlSink> {
    const s = new JsonlSink(POLICY, { file: { path, rotateBytes, rotateSeconds: 0 } });
    await s.open();
    return s;
}

const seqsOf = (path: string) =>
    readFileSync(path, "utf8")
        .split("\n")
        .filter((l) => l)
        .map((l) => Number(parseLine(l)?.record.seq));

async function verify(files: string[]) {
    const verifier = new TrailVerifier(EXPORT_SENDER, { maxAgeMs: null });
    for await (const event of jsonlEvents(files)) verifier.add(event);
    return verifier.finish();
}

describe("the JSONL export", () => {
    it("writes ECS lines with the record, in seq order, leaving out level none, and verifies", async () => {
        const path = tempFile();
        const s = await sink(path);
        const records = chain(8, [3]);
        expect(await s.write(records.slice(0, 4), false, null)).toBe(4);
        await s.write(records.slice(4), true, null);
        expect(seqsOf(path)).toEqual([1, 2, 4, 5, 6, 7, 8]);
        const first = JSON.parse(readFileSync(path, "utf8").split("\n")[0] as string) as {
            [key: string]: unknown;
            ecs: { version: string };
        };
        expect(first["@timestamp"]).toBe("2023-11-14T22:13:20.001Z");
        expect(first.ecs.version).toBe("8.11.0");
        expect(first.message).toBe(`${ALICE} has changed their account data for type m.theme to: {"n": 1, "f": 1.0}`);
        expect(first.event).toMatchObject({
            kind: "event",
            category: ["configuration"],
            type: ["change"],
            id: "c1",
            sequence: 1,
        });
        expect(first.user).toEqual({ id: ALICE });
        expect(first.related).toEqual({ user: [ALICE] });
        expect(first[EXPORT_KEY]).toMatchObject({
            seq: 1,
            content: '{"n":1,"f":1.0}',
            prev_posted: { seq: 0, hash: GENESIS },
        });
        const report = await verify([path]);
        expect(report.problems).toEqual([]);
        expect(report.omittedByPolicy).toBe(1);
        expect(report.start).toBe("genesis");
    });

    it("never writes a seq twice: a resend, and a restart, go on from the file's last line", async () => {
        const path = tempFile();
        const records = chain(10);
        const s = await sink(path);
        await s.write(records.slice(0, 6), false, null);
        await s.write(records.slice(2, 8), false, null); // the host module resends from an older acknowledgement
        await s.close();
        const again = await sink(path);
        expect(again.lastSeq()).toBe(8);
        await again.write(records.slice(0, 10), false, null);
        expect(seqsOf(path)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect((await verify([path])).problems).toEqual([]);
    });

    it("links lines across batches by the chain, also when records left out end a batch or were acknowledged", async () => {
        const path = tempFile();
        const records = chain(12, [3, 4, 8, 9]);
        const s = await sink(path);
        await s.write(records.slice(0, 4), false, null); // ends with two records left out
        expect(s.handledThrough()).toBe(4);
        await s.write(records.slice(4, 8), false, null); // a sinks-only batch: not "continuing", still linked
        await s.close();
        // A restart after the host module deleted seq 9 (left out, so never in the file): the chain goes on.
        const again = await sink(path);
        const nine = records[8] as AuditRecord;
        await again.write(records.slice(9), false, { seq: 9, hash: nine.chain?.hash ?? "" });
        const report = await verify([path]);
        expect(report.problems).toEqual([]);
        expect(report.omittedByPolicy).toBe(4);
    });

    it("cuts a torn last line at start instead of copying it, and writes that record again whole", async () => {
        const path = tempFile();
        const records = chain(6);
        const s = await sink(path);
        await s.write(records.slice(0, 4), false, null);
        await s.close();
        const whole = readFileSync(path, "utf8");
        const lines = whole.split("\n");
        // A crash mid-write: line 4 half written.
        writeFileSync(path, `${lines.slice(0, 3).join("\n")}\n${(lines[3] as string).slice(0, 40)}`);
        const again = await sink(path);
        expect(again.lastSeq()).toBe(3);
        await again.write(records, false, null);
        expect(readFileSync(path, "utf8").startsWith(whole)).toBe(true);
        expect(seqsOf(path)).toEqual([1, 2, 3, 4, 5, 6]);
        expect((await verify([path])).problems).toEqual([]);
    });

    it("rotates by renaming, and the chain goes on in the new file (also across a restart just after)", async () => {
        const path = tempFile();
        const records = chain(12);
        const s = await sink(path, 600);
        for (let i = 0; i < 12; i += 2) await s.write(records.slice(i, i + 2), i > 0, null);
        await s.close();
        const rotated = await rotatedFiles(path);
        expect(rotated.length).toBeGreaterThan(1);
        const files = [...rotated, path];
        expect(files.flatMap(seqsOf)).toEqual(records.map((r) => r.seq));
        expect((await verify(files)).problems).toEqual([]);
        // Missing a rotated file is a gap the verifier names.
        const withoutOne = files.filter((f) => f !== rotated[1]);
        expect((await verify(withoutOne)).problems[0]?.kind).toBe("missing");
        // A restart right after a rotation (new file empty) finds its place in the newest rotated file.
        writeFileSync(path, "");
        const again = await sink(path, 0);
        expect(again.lastSeq()).toBe(seqsOf(rotated.at(-1) as string).at(-1));
        expect(readdirSync(join(path, "..")).length).toBe(files.length);
    });

    it("rotates by age too, before the first batch past it", async () => {
        const path = tempFile();
        let now = 1_000_000;
        const s = new JsonlSink(POLICY, { file: { path, rotateBytes: 0, rotateSeconds: 60, now: () => now } });
        await s.open();
        const records = chain(6);
        await s.write(records.slice(0, 2), false, null);
        now += 59_000;
        await s.write(records.slice(2, 4), true, null);
        expect(await rotatedFiles(path)).toEqual([]);
        now += 2_000;
        await s.write(records.slice(4), true, null);
        const rotated = await rotatedFiles(path);
        expect(rotated).toEqual([`${path}.000000000004`]);
        expect(seqsOf(path)).toEqual([5, 6]);
        expect((await verify([...rotated, path])).problems).toEqual([]);
    });

    it("makes verify --jsonl name the seq of a removed or edited line, and a seq written twice", async () => {
        const path = tempFile();
        const s = await sink(path);
        await s.write(chain(6), false, null);
        const lines = readFileSync(path, "utf8")
            .split("\n")
            .filter((l) => l);
        const removed = tempFile();
        writeFileSync(removed, `${[...lines.slice(0, 2), ...lines.slice(3)].join("\n")}\n`);
        expect((await verify([removed])).problems[0]).toMatchObject({ kind: "missing", seq: 3 });
        const edited = tempFile();
        writeFileSync(edited, `${lines.join("\n").replace('{\\"n\\":4,', '{\\"n\\":5,')}\n`);
        expect((await verify([edited])).problems[0]).toMatchObject({ seq: 4 });
        const twice = tempFile();
        writeFileSync(twice, `${lines.join("\n")}\n`);
        appendFileSync(twice, `${lines[5]}\n`);
        expect((await verify([twice])).duplicates.map((d) => d.seq)).toEqual([6]);
    });

    it("after a failed write, refuses batches sent behind it and reads the file again for the resend", async () => {
        const path = tempFile();
        const records = chain(6);
        const s = await sink(path);
        await s.write(records.slice(0, 2), false, null);
        // Break the file under the sink: the next write fails.
        (s as unknown as { file: { append: () => Promise<void> } }).file.append = () =>
            Promise.reject(new Error("disk full"));
        await expect(s.write(records.slice(2, 4), true, null)).rejects.toThrow(/disk full/);
        await expect(s.write(records.slice(4, 6), true, null)).rejects.toThrow(/earlier batch/);
        // Half a line made it to the file before the failure: the resend cuts it and writes each record once.
        appendFileSync(path, '{"@timestamp": "2023');
        delete (s as unknown as { file: { append?: unknown } }).file.append;
        await s.write(records.slice(1), false, null);
        expect(seqsOf(path)).toEqual([1, 2, 3, 4, 5, 6]);
    });
});

describe("ChangeProcessor with the export", () => {
    it("acknowledges a batch only once the export holds it, and not at all if the write fails", async () => {
        const { ChangeProcessor, BatchFailedError } = await import("../../src/ingest/ChangeProcessor.js");
        let finishWrite: (() => void) | undefined;
        const writes: boolean[] = [];
        const sinkFake = {
            handledThrough: () => null,
            write: (_records: readonly AuditRecord[], continuing: boolean) => {
                writes.push(continuing);
                return new Promise<number | null>((resolve, reject) => {
                    finishWrite = writes.length === 1 ? () => resolve(4) : () => reject(new Error("disk full"));
                });
            },
        };
        const dispatched: number[] = [];
        const modules = { dispatch: async (unit: { seq: number }) => void dispatched.push(unit.seq) };
        const processor = new ChangeProcessor(modules as never, undefined, 8, 5_000, null, null, sinkFake);
        const records = chain(8);
        let answered = false;
        const first = processor.process(records.slice(0, 4)).then((r) => ((answered = true), r));
        await new Promise((r) => setTimeout(r, 20));
        expect(dispatched).toEqual([1, 2, 3, 4]); // the room's posts do not wait for the file
        expect(answered).toBe(false); // the acknowledgement does
        finishWrite?.();
        expect((await first).acknowledgedThrough).toBe(4);
        const second = processor.process(records.slice(4), 4);
        await new Promise((r) => setTimeout(r, 20));
        finishWrite?.();
        const err = await second.catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BatchFailedError);
        expect((err as InstanceType<typeof BatchFailedError>).processedThrough).toBeNull();
        expect(writes).toEqual([false, true]);
    });
});
