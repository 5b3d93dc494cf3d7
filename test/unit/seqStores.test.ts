/** verify's two stores (SeqHashes.ts, SeqHeap.ts): hashes by seq in 32 bytes each, records in seq order. */
import { describe, expect, it } from "vitest";
import type { ChainedRecord } from "../../src/verify/RecordChecks.js";
import { SeqHashes } from "../../src/verify/SeqHashes.js";
import { SeqHeap } from "../../src/verify/SeqHeap.js";

const hash = (n: number) => n.toString(16).padStart(64, "0");

describe("SeqHashes", () => {
    it("gives back each seq's hash, and null for seqs never set", () => {
        const hashes = new SeqHashes();
        expect(hashes.get(1)).toBeNull();
        for (const seq of [10, 11, 13, 5000]) hashes.set(seq, hash(seq));
        for (const seq of [10, 11, 13, 5000]) expect(hashes.get(seq)).toBe(hash(seq));
        for (const seq of [9, 12, 14, 4999, 5001, 1_000_000]) expect(hashes.get(seq)).toBeNull();
    });

    it("keeps seqs below the first one, however far, and far above it", () => {
        const hashes = new SeqHashes();
        hashes.set(500_000, hash(1));
        hashes.set(499_000, hash(2)); // below: the store grows downwards
        hashes.set(1, hash(3)); // far below: kept aside
        hashes.set(10_000_000, hash(4)); // far above: kept aside
        hashes.set(Number.MAX_SAFE_INTEGER + 2, hash(5));
        expect(hashes.get(500_000)).toBe(hash(1));
        expect(hashes.get(499_000)).toBe(hash(2));
        expect(hashes.get(1)).toBe(hash(3));
        expect(hashes.get(10_000_000)).toBe(hash(4));
        expect(hashes.get(Number.MAX_SAFE_INTEGER + 2)).toBe(hash(5));
        expect(hashes.get(499_500)).toBeNull();
    });

    it("grows past its first block without losing what it held", () => {
        const hashes = new SeqHashes();
        for (let seq = 0; seq < 5000; seq++) hashes.set(seq, hash(seq + 1));
        for (const seq of [0, 1023, 1024, 2047, 2048, 4999]) expect(hashes.get(seq)).toBe(hash(seq + 1));
    });

    it("ignores a value that is not a SHA-256 in hex", () => {
        const hashes = new SeqHashes();
        hashes.set(1, "XYZ");
        hashes.set(2, `${hash(2)}0`);
        expect(hashes.get(1)).toBeNull();
        expect(hashes.get(2)).toBeNull();
    });

    it("replaces a seq's hash when set again", () => {
        const hashes = new SeqHashes();
        hashes.set(3, hash(1));
        hashes.set(3, hash(2));
        expect(hashes.get(3)).toBe(hash(2));
    });
});

describe("SeqHeap", () => {
    const record = (seq: number, order?: number): ChainedRecord => ({
        eventId: `$${seq}`,
        seq,
        ts: 0,
        hash: "",
        prevHash: "",
        prevPosted: null,
        fields: {},
        ...(order !== undefined ? { order } : {}),
    });

    it("gives records back lowest seq first, whatever order they came in", () => {
        const heap = new SeqHeap();
        const seqs = [50, 3, 77, 3, 12, 99, 1, 64, 8, 20, 41, 2, 100, 0, 5];
        for (const seq of seqs) heap.push(record(seq));
        expect(heap.size).toBe(seqs.length);
        const out: number[] = [];
        for (let r = heap.pop(); r !== undefined; r = heap.pop()) out.push(r.seq);
        expect(out).toEqual([...seqs].sort((a, b) => a - b));
        expect(heap.size).toBe(0);
        expect(heap.pop()).toBeUndefined();
    });

    it("names the earliest room position among the records it holds", () => {
        const heap = new SeqHeap();
        expect(heap.minOrder()).toBeNull();
        heap.push(record(5, 9));
        heap.push(record(6, 4));
        heap.push(record(7));
        expect(heap.minOrder()).toBe(4);
    });
});
