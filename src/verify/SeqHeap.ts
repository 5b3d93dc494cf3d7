/** Records waiting for the walk in seq order (Verifier.ts). */
import type { ChainedRecord } from "./RecordChecks.js";

/** Records waiting for their turn, lowest seq first (a binary min-heap). */
export class SeqHeap {
    private readonly heap: ChainedRecord[] = [];

    public get size(): number {
        return this.heap.length;
    }

    public push(record: ChainedRecord): void {
        const heap = this.heap;
        heap.push(record);
        for (let i = heap.length - 1; i > 0;) {
            const parent = (i - 1) >> 1;
            if ((heap[parent] as ChainedRecord).seq <= record.seq) break;
            [heap[i], heap[parent]] = [heap[parent] as ChainedRecord, record];
            i = parent;
        }
    }

    /** The lowest room position among the waiting records. */
    public minOrder(): number | null {
        let min: number | null = null;
        for (const record of this.heap) min = Math.min(min ?? Infinity, record.order ?? Infinity);
        return min;
    }

    public pop(): ChainedRecord | undefined {
        const heap = this.heap;
        const top = heap[0];
        const last = heap.pop();
        if (top === undefined || last === undefined || heap.length === 0) return top;
        heap[0] = last;
        for (let i = 0; ;) {
            let smallest = i;
            for (const child of [2 * i + 1, 2 * i + 2]) {
                if (child < heap.length && (heap[child] as ChainedRecord).seq < (heap[smallest] as ChainedRecord).seq) {
                    smallest = child;
                }
            }
            if (smallest === i) return top;
            [heap[i], heap[smallest]] = [heap[smallest] as ChainedRecord, heap[i] as ChainedRecord];
            i = smallest;
        }
    }
}
