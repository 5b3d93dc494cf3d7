/**
 * `verify --state FILE`: where the last run stopped, so a cron run reads only what is new. The file holds the
 * room and sender it belongs to, the walk's position (seq and hash, and the hashes of recent seqs to compare late
 * copies with), and the event after which the next run reads. Written atomically (a new file renamed over the
 * old), so a run killed midway leaves the previous state.
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import type { ResumePoint } from "./Verifier.js";

const STATE_VERSION = 1;

export interface VerifyState extends ResumePoint {
    roomId: string;
    sender: string;
}

/** The state in `path`, or null if there is none yet. Throws on a file that is not a state file. */
export async function loadState(path: string): Promise<VerifyState | null> {
    let text: string;
    try {
        text = await readFile(path, "utf8");
    } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw err;
    }
    const raw = JSON.parse(text) as Record<string, unknown>;
    const verified = raw.verified as { seq?: unknown; hash?: unknown; recent?: unknown } | undefined;
    const valid =
        raw.version === STATE_VERSION &&
        typeof raw.room_id === "string" &&
        typeof raw.sender === "string" &&
        typeof verified?.seq === "number" &&
        typeof verified.hash === "string" &&
        typeof verified.recent === "object" &&
        (raw.after_event_id === null || typeof raw.after_event_id === "string") &&
        Array.isArray(raw.checked_after);
    if (!valid || !verified) throw new Error(`${path} is not a verify state file`);
    return {
        roomId: raw.room_id as string,
        sender: raw.sender as string,
        verified: {
            seq: verified.seq as number,
            hash: verified.hash as string,
            recent: verified.recent as Record<string, string>,
        },
        afterEventId: raw.after_event_id as string | null,
        checkedAfter: (raw.checked_after as unknown[]).filter((id): id is string => typeof id === "string"),
    };
}

export async function saveState(path: string, state: VerifyState): Promise<void> {
    const text = JSON.stringify({
        version: STATE_VERSION,
        room_id: state.roomId,
        sender: state.sender,
        verified: state.verified,
        after_event_id: state.afterEventId,
        checked_after: state.checkedAfter,
    });
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, text);
    await rename(temporary, path);
}
