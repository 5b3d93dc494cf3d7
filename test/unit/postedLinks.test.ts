import { describe, expect, it } from "vitest";
import { PostedLinks } from "../../src/ingest/PostedLinks.js";
import type { AccountDataChange, AuditRecord } from "../../src/modules/ModuleHost.js";

const HIDDEN = "m.fully_read";
const hash = (seq: number) => seq.toString(16).padStart(64, "0");

function record(seq: number, type = "m.test"): AccountDataChange {
    return {
        id: `c${seq}`,
        seq,
        ts: 0,
        recovered: false,
        contentJson: "{}",
        keyedDigest: null,
        chain: { prevHash: hash(seq - 1), hash: hash(seq) },
        userId: "@a:x",
        roomId: null,
        type,
        content: undefined as never,
    };
}

const links = () => new PostedLinks((r: AuditRecord) => (r as AccountDataChange).type !== HIDDEN);
const prev = (records: AuditRecord[]) =>
    records.map((r) => (r.prevPosted === undefined ? "-" : (r.prevPosted?.seq ?? null)));

describe("PostedLinks", () => {
    it("links each posted record to the one shown before it, skipping those left out", () => {
        const planner = links();
        const planned = planner.plan([record(1), record(2, HIDDEN), record(3, HIDDEN), record(4)], false, null);
        // Record 1 is the chain's first (prev hash genesis): it says nothing was posted before it (seq 0).
        expect(prev(planned)).toEqual([0, "-", "-", 1]);
        expect(planned[3]?.prevPosted).toEqual({ seq: 1, hash: hash(1) });
    });

    it("continues from the batch in flight, or starts from the host's head", () => {
        const planner = links();
        planner.plan([record(1), record(2)], false, null);
        expect(prev(planner.plan([record(3)], true, null))).toEqual([2]); // pipelined: the host's head is stale
        const one = { seq: 1, hash: hash(1) };
        expect(prev(planner.plan([record(2), record(3)], false, one, one))).toEqual([1, 2]); // a retry after 2 failed
    });

    it("reports the head through an acknowledgement, and keeps it through batches that show nothing", () => {
        const planner = links();
        planner.plan([record(1), record(2), record(3, HIDDEN)], false, { seq: 0, hash: hash(0) });
        expect(planner.headThrough(1)).toEqual({ seq: 1, hash: hash(1) });
        expect(planner.headThrough(3)).toEqual({ seq: 2, hash: hash(2) });
        planner.plan([record(4, HIDDEN)], true, null);
        expect(planner.headThrough(4)).toEqual({ seq: 2, hash: hash(2) });
    });

    it("claims nothing for a record when one before it never arrived", () => {
        const planner = links();
        const one = { seq: 1, hash: hash(1) };
        expect(prev(planner.plan([record(2), record(4)], false, one, one))).toEqual([1, null]); // 3 is missing
        expect(prev(planner.plan([record(5)], false, null, null))).toEqual([null]); // nothing known before it
    });

    it("lets the first posted record say the chain began right before it, also when the first were left out", () => {
        const planner = links();
        const planned = planner.plan([record(1, HIDDEN), record(2, HIDDEN), record(3)], false, null);
        expect(planned[2]?.prevPosted).toEqual({ seq: 0, hash: "0".repeat(64) });
        // Also across an acknowledgement of a batch that posted nothing: the host module stores the start.
        const next = links();
        next.plan([record(1, HIDDEN)], false, null);
        const head = next.headThrough(1);
        expect(head).toEqual({ seq: 0, hash: "0".repeat(64) });
        expect(next.plan([record(2)], false, head, { seq: 1, hash: hash(1) })[0]?.prevPosted).toEqual(head);
    });

    it("leaves records without a chain (older host modules) alone", () => {
        const planned = links().plan([{ ...record(1), chain: null }], false, null);
        expect(planned[0]?.prevPosted).toBeUndefined();
    });
});
