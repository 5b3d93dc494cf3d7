/** Startup: make sure the sender exists, is in the audit room and may post there. */
import type { Intent } from "matrix-appservice-bridge";
import { StartupError } from "../Errors.js";
import { creatorsWithoutLimit, type StateEvent } from "./RoomSafety.js";

interface PowerLevels {
    events?: Record<string, number>;
    events_default?: number;
    users?: Record<string, number>;
    users_default?: number;
}

function canSendMessages(levels: PowerLevels, userId: string, creators: string[]): boolean {
    // Since room version 12 a creator has power above every level and is not listed (create-room's rooms).
    if (creators.includes(userId)) return true;
    const required = levels.events?.["m.room.message"] ?? levels.events_default ?? 0;
    const own = levels.users?.[userId] ?? levels.users_default ?? 0;
    return own >= required;
}

/** Registers the sender, resolves `roomIdOrAlias`, joins it, and checks power levels; returns the room ID. */
export async function joinAuditRoom(intent: Intent, sender: string, roomIdOrAlias: string): Promise<string> {
    try {
        await intent.ensureRegistered();
    } catch (err) {
        throw new StartupError(
            `Cannot register the sender ${sender}: ${(err as Error).message}. ` +
                "Check that the homeserver loads this appservice's registration file (app_service_config_files).",
            { cause: err },
        );
    }
    const client = intent.matrixClient;
    let roomId: string;
    try {
        roomId = await client.resolveRoom(roomIdOrAlias);
    } catch (err) {
        throw new StartupError(
            `Cannot resolve the audit room alias ${roomIdOrAlias}: ${(err as Error).message}. ` +
                "Check 'audit_room' in the config.",
            { cause: err },
        );
    }
    try {
        await client.joinRoom(roomId);
    } catch (err) {
        throw new StartupError(
            `${sender} cannot join the audit room ${roomIdOrAlias}: ${(err as Error).message}. ` +
                `Invite ${sender} to the room (or make it joinable), then start the appservice again.`,
            { cause: err },
        );
    }
    let state: StateEvent[] = [];
    try {
        state = (await client.getRoomState(roomId)) as StateEvent[];
    } catch {
        // Unreadable state: the first post will say whether the sender may post.
    }
    // No power levels event: everyone may post.
    const levels = (state.find((e) => e.type === "m.room.power_levels" && e.state_key === "")?.content ??
        {}) as PowerLevels;
    const creators = creatorsWithoutLimit(state).map(([user]) => user);
    if (!canSendMessages(levels, sender, creators)) {
        throw new StartupError(
            `${sender} is in the audit room ${roomIdOrAlias} but may not post m.room.message events. ` +
                `Give ${sender} a power level high enough to send messages, then start the appservice again.`,
        );
    }
    return roomId;
}
