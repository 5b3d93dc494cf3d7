/**
 * Decides which unit runs next: at most `limit` at once; units that share an ordering key (a user: a change
 * has one, a digest one per user in it) strictly one after another, in seq order; and among the units free to
 * run, always the lowest sequence number. So with `limit` 1 the audit room is in exact sequence order, and
 * with more, units of different users overlap but none overtakes an older one that could have run. A gap
 * notice runs alone: it starts once everything before it has finished, and nothing after it starts before it
 * has finished, so it sits in the room exactly where its seq puts it.
 *
 * Each key has a queue of its units, the running one first; a unit is ready when it heads the queues of all
 * its keys. Ready units wait in a min-heap by seq, so each step costs O(keys + log n), whatever the backlog.
 */
import { type AuditUnit, orderingKeys, runsAlone } from "../modules/ModuleHost.js";

interface Job {
    unit: AuditUnit;
    keys: string[];
    /** Keys whose queue this job does not head yet. */
    waitingOn: number;
    resolve(): void;
    reject(err: unknown): void;
}

/** Ready jobs, lowest seq first (a binary min-heap). */
class ReadyJobs {
    private readonly heap: Job[] = [];

    public get size(): number {
        return this.heap.length;
    }

    public push(job: Job): void {
        this.heap.push(job);
        let i = this.heap.length - 1;
        while (i > 0) {
            const parent = (i - 1) >> 1;
            if (this.seqAt(parent) <= job.unit.seq) break;
            this.swap(i, parent);
            i = parent;
        }
    }

    public pop(): Job | undefined {
        const top = this.heap[0];
        const last = this.heap.pop();
        if (top === undefined || last === undefined || this.heap.length === 0) return top;
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
        return top;
    }

    private seqAt(i: number): number {
        return (this.heap[i] as Job).unit.seq;
    }

    private swap(i: number, j: number): void {
        const job = this.heap[i] as Job;
        this.heap[i] = this.heap[j] as Job;
        this.heap[j] = job;
    }
}

export class ChangeScheduler {
    /** Per key: its jobs not yet finished, in seq order; the head may be running. */
    private readonly queues = new Map<string, Job[]>();
    private readonly ready = new ReadyJobs();
    private running = 0;
    /** Jobs admitted to the queues and not finished (a gap notice waits until there are none). */
    private admitted = 0;
    /** The gap notice running, or the first one waiting, and every job submitted after it, in order. */
    private barrier: Job[] = [];
    private gapRunning = false;

    public constructor(
        private readonly limit: number,
        private readonly run: (unit: AuditUnit) => Promise<void>,
    ) {}

    /**
     * Resolves when `unit` has run. Rejects with the error of an earlier unit sharing a key with it that failed
     * while this one waited: it must not run ahead of that one (it is retried with it).
     */
    public submit(unit: AuditUnit): Promise<void> {
        return new Promise<void>((resolve, reject) => {
            this.enqueue({ unit, keys: orderingKeys(unit), waitingOn: 0, resolve, reject });
            this.startReady();
        });
    }

    /** Behind the gap notice waiting or running, if any (a gap notice becomes it); else into the queues. */
    private enqueue(job: Job): void {
        if (this.barrier.length > 0 || runsAlone(job.unit)) this.barrier.push(job);
        else this.admit(job);
    }

    private admit(job: Job): void {
        this.admitted++;
        for (const key of job.keys) {
            const queue = this.queues.get(key);
            if (queue) {
                queue.push(job);
                job.waitingOn++;
            } else {
                this.queues.set(key, [job]);
            }
        }
        if (job.waitingOn === 0) this.ready.push(job);
    }

    private startReady(): void {
        if (this.gapRunning) return;
        while (this.running < this.limit && this.ready.size > 0) this.start(this.ready.pop() as Job);
        const gap = this.barrier[0];
        if (gap && this.admitted === 0) {
            this.gapRunning = true;
            this.start(gap);
        }
    }

    private start(job: Job): void {
        this.running++;
        this.run(job.unit).then(
            () => {
                job.resolve();
                this.finished(job, null);
            },
            (err: unknown) => {
                job.reject(err);
                this.finished(job, err);
            },
        );
    }

    private finished(job: Job, err: unknown): void {
        this.running--;
        if (runsAlone(job.unit)) {
            this.gapRunning = false;
            // The gap notice heads the barrier; the jobs behind it are admitted in order, up to the next gap
            // notice, which becomes the barrier.
            for (const next of this.barrier.splice(0).slice(1)) this.enqueue(next);
        } else {
            this.admitted--;
            if (err !== null) this.rejectBehind(job, err);
            this.release(job);
        }
        this.startReady();
    }

    /** Takes `job` off the head of its queues; the next job of each may become ready. */
    private release(job: Job): void {
        for (const key of job.keys) {
            const queue = this.queues.get(key) as Job[];
            queue.shift();
            const next = queue[0];
            if (!next) this.queues.delete(key);
            else if (--next.waitingOn === 0) this.ready.push(next);
        }
    }

    /**
     * After `failed` (heading its queues) failed: every job behind it in one of its queues fails with its error,
     * so does every job behind those in any of their queues, and every job waiting behind a gap notice that
     * shares a key with any of them. None of them was ready (each waited behind a failed one).
     */
    private rejectBehind(failed: Job, err: unknown): void {
        const rejected = new Set<Job>();
        const cut = (key: string, from: number) => {
            const queue = this.queues.get(key);
            if (!queue || from < 0 || from >= queue.length) return;
            for (const job of queue.splice(from)) rejected.add(job);
            if (queue.length === 0) this.queues.delete(key);
        };
        for (const key of failed.keys) cut(key, 1);
        // A Set's iteration also visits what is added during it.
        for (const job of rejected) {
            for (const key of job.keys) cut(key, this.queues.get(key)?.indexOf(job) ?? -1);
        }
        const keys = new Set(failed.keys);
        for (const job of rejected) {
            job.reject(err);
            this.admitted--;
            for (const key of job.keys) keys.add(key);
        }
        this.rejectSharingKeys(keys, this.barrier, err);
    }

    /** Rejects, in order, the jobs of `jobs` that share a key with `keys` (which grows with theirs). */
    private rejectSharingKeys(keys: Set<string>, jobs: Job[], err: unknown): void {
        for (let i = 0; i < jobs.length;) {
            const job = jobs[i] as Job;
            if (job.keys.some((k) => keys.has(k))) {
                job.reject(err);
                jobs.splice(i, 1);
                for (const k of job.keys) keys.add(k);
            } else {
                i++;
            }
        }
    }
}
