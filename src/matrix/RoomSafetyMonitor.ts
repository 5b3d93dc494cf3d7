/** Keeps the audit room's safety problems fresh for /health and the metrics (at most one check a minute). */
import type { Metrics } from "../Metrics.js";
import {
    checkAuditRoom,
    logRoomProblems,
    ROOM_PROBLEM_CODES,
    type RoomProblem,
    type RoomStateReader,
} from "./RoomSafety.js";

const REFRESH_MS = 60_000;

export class RoomSafetyMonitor {
    private last: RoomProblem[] | null = null;
    private checkedAt = 0;
    private reported = "";

    public constructor(
        private readonly client: RoomStateReader,
        private readonly roomId: string,
        private readonly sender: string,
        private readonly metrics: Metrics,
    ) {}

    /** The room's problems, checked again if the last check is older than a minute (null: cannot check). */
    public async problems(): Promise<RoomProblem[] | null> {
        if (Date.now() - this.checkedAt > REFRESH_MS) await this.refresh();
        return this.last;
    }

    public async refresh(logAlways = false): Promise<void> {
        this.checkedAt = Date.now();
        try {
            this.last = await checkAuditRoom(this.client, this.roomId, this.sender);
        } catch {
            this.last = null;
            return;
        }
        for (const code of ROOM_PROBLEM_CODES) {
            this.metrics.roomProblems.set({ problem: code }, this.last.some((p) => p.code === code) ? 1 : 0);
        }
        // Log at startup, and whenever the set of problems changes (not every minute).
        const key = this.last.map((p) => p.detail).join("|");
        if (logAlways || key !== this.reported) logRoomProblems(this.roomId, this.last);
        this.reported = key;
    }
}
