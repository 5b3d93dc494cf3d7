/**
 * Links between the records the audit room shows. The host module chains every record (README, "The hash
 * chain"), but the audit policy leaves some out (level none), and a verifier reading the room must tell those
 * apart from records that went missing. So each posted record names the one the room shows before it, in seq
 * order (`prev_posted`): the seqs in between were left out on purpose.
 *
 * Posting is concurrent, so the links are planned when a batch arrives, in seq order, before anything is sent:
 * a batch sent while the one before it was unanswered (`follows`) continues from that one's plan; any other
 * batch starts from the heads the host module stored with the last acknowledgement (the last record posted,
 * and the last record acknowledged), so a restarted appservice, or a retry after a failure, plans exactly as
 * before: the policy is deterministic.
 *
 * The appservice vouches only for what it saw: each record must link (its chain's prev hash) to the record
 * received just before it. Where one does not (a record never arrived), the next posted record claims nothing
 * (`prevPosted` null), and a verifier sees the missing seqs as missing.
 */
import type { PostedRef } from "../modules/ModuleApi.js";
import { GENESIS } from "../verify/Chain.js";
import type { AuditRecord } from "../modules/ModuleHost.js";

const GENESIS_REF: PostedRef = { seq: 0, hash: GENESIS };

export class PostedLinks {
    private head: PostedRef | null = null;
    /** The last record received, posted or not; null when unknown. */
    private lastSeen: PostedRef | null = null;
    /** Every record since `head` linked to the one before it. */
    private unbroken = false;
    /** The head as of the last acknowledgement (what the host module has, or will have, stored). */
    private ackedHead: PostedRef | null = null;
    /** Planned links and the records planned as posted, by seq, until acknowledged. */
    private readonly links = new Map<number, PostedRef | null>();
    private readonly posted = new Map<number, PostedRef>();

    public constructor(private readonly willPost: (record: AuditRecord) => boolean) {}

    /** Plans `records` (in seq order); returns them with `prevPosted` set on those that will be posted. */
    public plan(
        records: readonly AuditRecord[],
        continuing: boolean,
        hostHead: PostedRef | null,
        hostAcked: PostedRef | null = null,
    ): AuditRecord[] {
        const first = records[0]?.seq;
        if (!continuing) {
            this.head = hostHead;
            this.ackedHead = hostHead;
            this.lastSeen = hostAcked;
            this.unbroken = hostAcked !== null;
            if (first !== undefined) this.forgetFrom(first);
        }
        return records.map((record) => {
            if (record.chain === null) return record;
            if (record.chain.prevHash === GENESIS) {
                // The chain's first record: nothing came before it, so the first posted record can say so
                // (prev_posted {seq: 0, hash: genesis}), and a verifier knows the trail starts there.
                this.head = GENESIS_REF;
                this.lastSeen = GENESIS_REF;
                this.unbroken = true;
                // Acknowledged as the posted head even if nothing of this batch is posted, so that the next batch
                // (planned from what the host module stored) still links to the chain's start.
                this.posted.set(0, GENESIS_REF);
            }
            this.unbroken &&= this.lastSeen !== null && record.chain.prevHash === this.lastSeen.hash;
            this.lastSeen = { seq: record.seq, hash: record.chain.hash };
            if (!this.willPost(record)) return record;
            const prevPosted = this.unbroken ? this.head : null;
            this.links.set(record.seq, prevPosted);
            this.head = { seq: record.seq, hash: record.chain.hash };
            this.unbroken = true;
            this.posted.set(record.seq, this.head);
            return { ...record, prevPosted };
        });
    }

    /**
     * The last record planned as posted at or below `seq`, for the host module to store with its
     * acknowledgement through `seq` (the previous head if none is). Forgets plans up to `seq`.
     */
    public headThrough(seq: number): PostedRef | null {
        let best: PostedRef | null = null;
        for (const [postedSeq, ref] of this.posted) {
            if (postedSeq <= seq && (best === null || postedSeq > best.seq)) best = ref;
        }
        for (const key of [...this.posted.keys()]) if (key <= seq) this.posted.delete(key);
        for (const key of [...this.links.keys()]) if (key <= seq) this.links.delete(key);
        if (best !== null) this.ackedHead = best;
        return this.ackedHead;
    }

    private forgetFrom(seq: number): void {
        for (const key of [...this.posted.keys()]) if (key >= seq) this.posted.delete(key);
        for (const key of [...this.links.keys()]) if (key >= seq) this.links.delete(key);
    }
}
