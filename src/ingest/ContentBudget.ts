/**
 * Bounds how much content is read at once. Contents stay JSON text until their change is recorded (see
 * ContentReader); reading one costs up to some 70 bytes of memory per byte of text, and up to `max_in_flight`
 * units are recorded at once, each a digest of several large changes at worst. So a large unit first takes its
 * contents' size from this budget, in arrival order, and gives it back once recorded: a few users writing
 * megabytes of dense arrays at once take turns instead of holding gigabytes. A unit larger than the whole budget
 * takes all of it, alone. A small unit (at most `freeBytes`: a few MB of memory at worst) never waits: the
 * other users' ordinary changes are not held back by those who write megabytes.
 */

interface Waiter {
    bytes: number;
    grant(): void;
}

export class ContentBudget {
    private available: number;
    private readonly waiting: Waiter[] = [];

    public constructor(
        private readonly capacity: number,
        private readonly freeBytes = 0,
    ) {
        this.available = capacity;
    }

    /** Resolves with the release function once `bytes` (at most the whole budget) are free. */
    public async take(bytes: number): Promise<() => void> {
        if (bytes <= this.freeBytes) return () => undefined;
        const taken = Math.min(Math.max(0, bytes), this.capacity);
        if (this.waiting.length === 0 && taken <= this.available) {
            this.available -= taken;
        } else {
            await new Promise<void>((grant) => this.waiting.push({ bytes: taken, grant }));
        }
        let released = false;
        return () => {
            if (released) return;
            released = true;
            this.available += taken;
            this.grantWaiting();
        };
    }

    /** Bytes taken now (for tests and metrics). */
    public get inUse(): number {
        return this.capacity - this.available;
    }

    private grantWaiting(): void {
        // In arrival order: a large unit is not passed over for ever by a stream of small ones.
        for (let next = this.waiting[0]; next && next.bytes <= this.available; next = this.waiting[0]) {
            this.waiting.shift();
            this.available -= next.bytes;
            next.grant();
        }
    }
}
