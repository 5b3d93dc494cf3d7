/**
 * The hash of every seq seen, in 32 bytes each (a growable byte array indexed by seq), so that every later copy
 * of a record can be compared with the first, also in a room of millions of records, without keeping the
 * events: 1,000,000 records take 32 MB.
 */
const HASH_BYTES = 32;
/**
 * Seqs far from the dense range go to a map: a forged seq of 10^12 must not allocate terabytes. The dense range
 * grows at most to twice the records stored plus this slack, so its memory stays linear in the records read.
 */
const SLACK = 100_000;

export class SeqHashes {
    private base = -1;
    private bytes = new Uint8Array(0);
    private present = new Uint8Array(0);
    private readonly outliers = new Map<number, string>();
    private stored = 0;

    /** The hash stored for `seq` (hex), or null. */
    public get(seq: number): string | null {
        const outlier = this.outliers.get(seq);
        if (outlier !== undefined) return outlier;
        const i = seq - this.base;
        if (this.base < 0 || i < 0 || i >= this.present.length || this.present[i] === 0) return null;
        return Buffer.from(this.bytes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES)).toString("hex");
    }

    public set(seq: number, hashHex: string): void {
        if (!/^[0-9a-f]{64}$/.test(hashHex)) return;
        if (this.base < 0) this.base = seq;
        this.stored++;
        const reach = Math.max(this.present.length, 2 * this.stored) + SLACK;
        const far = seq < this.base - SLACK || seq - this.base >= reach;
        if (!Number.isSafeInteger(seq) || far) {
            this.outliers.set(seq, hashHex);
            return;
        }
        if (seq < this.base) this.rebase(seq);
        const i = seq - this.base;
        if (i >= this.present.length) this.grow(i + 1);
        this.bytes.set(Buffer.from(hashHex, "hex"), i * HASH_BYTES);
        this.present[i] = 1;
    }

    private grow(minLength: number): void {
        const length = Math.max(minLength, this.present.length * 2, 1024);
        const bytes = new Uint8Array(length * HASH_BYTES);
        bytes.set(this.bytes);
        const present = new Uint8Array(length);
        present.set(this.present);
        this.bytes = bytes;
        this.present = present;
    }

    /** Seqs below the first one seen (rare: a room read from a seq onwards, then an older copy). */
    private rebase(seq: number): void {
        const shift = this.base - seq;
        const present = new Uint8Array(this.present.length + shift);
        present.set(this.present, shift);
        const bytes = new Uint8Array(present.length * HASH_BYTES);
        bytes.set(this.bytes, shift * HASH_BYTES);
        this.present = present;
        this.bytes = bytes;
        this.base = seq;
    }
}
