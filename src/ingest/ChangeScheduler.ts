/**
 * Decides which change runs next: at most `limit` at once, one user's changes strictly one after another,
 * and among the changes free to run, always the lowest sequence number. So with `limit` 1 the audit room
 * is in exact sequence order, and with more, different users' changes overlap but none overtakes an older
 * one that could have run. A gap notice runs alone: it starts once everything before it has finished, and
 * nothing after it starts before it has finished, so it sits in the room exactly where its seq puts it.
 */
import { type AuditUnit, orderingKey, runsAlone } from "../modules/ModuleHost.js";

interface Job {
    change: AuditUnit;
    resolve(): void;
    reject(err: unknown): void;
}

interface Entry {
    seq: number;
    userId: string;
}

/** Users whose next change may run, lowest head seq first (a binary min-heap). */
class ReadyUsers {
    private readonly heap: Entry[] = [];

    public get size(): number {
        return this.heap.length;
    }

    public peek(): string | undefined {
        return this.heap[0]?.userId;
    }

    public push(seq: number, userId: string): void {
        this.heap.push({ seq, userId });
        let i = this.heap.length - 1;
        while (i > 0) {
            const parent = (i - 1) >> 1;
            if (this.seqAt(parent) <= seq) break;
            this.swap(i, parent);
            i = parent;
        }
    }

    public pop(): string | undefined {
        const top = this.heap[0];
        const last = this.heap.pop();
        if (top === undefined || last === undefined || this.heap.length === 0) return top?.userId;
        this.heap[0] = last;
        for (let i = 0; ;) {
            let smallest = i;
            for (const child of [2 * i + 1, 2 * i + 2]) {
                if (child < this.heap.length && this.seqAt(child) < this.seqAt(smallest)) smallest = child;
            }
            if (smallest === i) break;
            this.swap(i, smallest);
            i = smallest;
        }
        return top.userId;
    }

    private seqAt(i: number): number {
        return (this.heap[i] as Entry).seq;
    }

    private swap(i: number, j: number): void {
        const entry = this.heap[i] as Entry;
        this.heap[i] = this.heap[j] as Entry;
        this.heap[j] = entry;
    }
}

export class ChangeScheduler {
    /** Each user's changes not yet started, oldest first; a user is in `ready` or running, never both. */
    private readonly queued = new Map<string, Job[]>();
    private readonly ready = new ReadyUsers();
    private readonly runningUsers = new Set<string>();
    private exclusiveRunning = false;

    public constructor(
        private readonly limit: number,
        private readonly run: (change: AuditUnit) => Promise<void>,
    ) {}

    /**
     * Resolves when `change` has run. Rejects with the error of an earlier change of the same user that
     * failed while this one waited: it must not run ahead of that one (it is retried with it).
     */
    public submit(change: AuditUnit): Promise<void> {
        return new Promise<void>((resolve, reject) => {
            const userId = orderingKey(change);
            const queue = this.queued.get(userId);
            if (queue) {
                queue.push({ change, resolve, reject });
            } else {
                this.queued.set(userId, [{ change, resolve, reject }]);
                if (!this.runningUsers.has(userId)) this.ready.push(change.seq, userId);
            }
            this.startReady();
        });
    }

    private startReady(): void {
        while (!this.exclusiveRunning && this.runningUsers.size < this.limit && this.ready.size > 0) {
            const next = (this.queued.get(this.ready.peek() as string) as Job[])[0] as Job;
            const exclusive = runsAlone(next.change);
            if (exclusive && this.runningUsers.size > 0) return;
            const userId = this.ready.pop() as string;
            const queue = this.queued.get(userId) as Job[];
            const job = queue.shift() as Job;
            if (queue.length === 0) this.queued.delete(userId);
            this.runningUsers.add(userId);
            this.exclusiveRunning = exclusive;
            this.run(job.change).then(
                () => {
                    job.resolve();
                    this.finished(userId);
                },
                (err: unknown) => {
                    job.reject(err);
                    for (const waiting of this.queued.get(userId) ?? []) waiting.reject(err);
                    this.queued.delete(userId);
                    this.finished(userId);
                },
            );
        }
    }

    private finished(userId: string): void {
        this.runningUsers.delete(userId);
        this.exclusiveRunning = false;
        const next = this.queued.get(userId)?.[0];
        if (next) this.ready.push(next.change.seq, userId);
        this.startReady();
    }
}
