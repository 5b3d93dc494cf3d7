import { describe, expect, it } from "vitest";
import { PostedLinks } from "../../src/ingest/PostedLinks.js";
import type { PostedRef } from "../../src/modules/ModuleApi.js";
import type { AccountDataChange, AuditRecord } from "../../src/modules/ModuleHost.js";

// Seqs start at 2 here: record 1 would be the chain's first (prev hash genesis), which plans a head of its own.
const hash = (seq: number) => seq.toString(16).padStart(64, "0");
const ref = (seq: number): PostedRef => ({ seq, hash: hash(seq) });

function record(seq: number): AccountDataChange {
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
        type: "m.test",
        content: undefined as never,
    };
}

/** A planner whose policy leaves out the seqs in `hidden` (changeable between batches, as after a restart). */
function planner(hidden = new Set<number>()) {
    return { links: new PostedLinks((r: AuditRecord) => !hidden.has(r.seq)), hidden };
}

describe("PostedLinks' acknowledged heads", () => {
    it("reports the highest planned seq through an acknowledgement, whatever order the plans came in", () => {
        const { links } = planner();
        links.plan([record(5), record(6)], false, ref(4), ref(4));
        // A pipelined batch of lower seqs planned after them (it continues from the plan in flight).
        links.plan([record(3)], true, null);
        expect(links.headThrough(6)).toEqual(ref(6));
    });

    it("forgets the plans an acknowledgement covered: a later one at or below them answers with the host's head", () => {
        const { links } = planner();
        links.plan([record(2), record(3), record(4)], false, ref(1), ref(1));
        expect(links.headThrough(3)).toEqual(ref(3));
        // The host module starts afresh from the head it stored (here: an older one); seq 3's plan is gone.
        links.plan([record(5)], false, ref(1), ref(1));
        expect(links.headThrough(3)).toEqual(ref(1));
        expect(links.headThrough(2)).toEqual(ref(1));
        // Seq 4 was not acknowledged yet, so it still counts.
        expect(links.headThrough(4)).toEqual(ref(4));
    });

    it("drops the plans from a resent batch's first seq on, even those the resend no longer covers", () => {
        const { links } = planner();
        links.plan([record(2), record(3), record(4)], false, ref(1), ref(1));
        // The resend covers only 2 and 3: the plan for 4 is void.
        const resent = links.plan([record(2), record(3)], false, ref(1), ref(1));
        expect(resent.map((r) => r.prevPosted)).toEqual([ref(1), ref(2)]);
        expect(links.headThrough(4)).toEqual(ref(3));
    });

    it("drops the plan for the resend's first seq too, if it is no longer posted", () => {
        const { links, hidden } = planner();
        links.plan([record(2), record(3)], false, ref(1), ref(1));
        hidden.add(3);
        const resent = links.plan([record(3)], false, ref(2), ref(2));
        expect(resent[0]?.prevPosted).toBeUndefined();
        expect(links.headThrough(3)).toEqual(ref(2));
    });

    it("keeps the unacknowledged plans below a batch sent on its own", () => {
        const { links } = planner();
        links.plan([record(2), record(3)], false, ref(1), ref(1));
        links.plan([record(4), record(5)], false, ref(1), ref(1));
        expect(links.headThrough(3)).toEqual(ref(3));
        expect(links.headThrough(5)).toEqual(ref(5));
    });
});
