/**
 * Is the audit room a safe place for an audit trail? Checked at startup and by /health (README, "Setting up
 * the audit room"): anyone can join it; anyone can read it; members from other servers read it; it is
 * encrypted (the appservice has no end-to-end encryption); users besides the sender may redact its events; it has a
 * retention policy (the homeserver would purge the oldest records, and `verify` would find the trail cut); its
 * history is hidden from members for the time before they joined or were invited (an auditor added later could not
 * read the earlier trail); members besides the sender may post messages (an audit-looking line from one of them is
 * a look-alike that `verify` reports on every run).
 */
import { Logger } from "matrix-appservice-bridge";
import { serverNameOf } from "./Identifiers.js";

const log = new Logger("RoomSafety");

export type RoomProblemCode =
    | "joinable"
    | "world_readable"
    | "federated"
    | "encrypted"
    | "redactors"
    | "retention"
    | "history_hidden"
    | "posters";

export const ROOM_PROBLEM_CODES: readonly RoomProblemCode[] = [
    "joinable",
    "world_readable",
    "federated",
    "encrypted",
    "redactors",
    "retention",
    "history_hidden",
    "posters",
];

export interface RoomProblem {
    code: RoomProblemCode;
    detail: string;
}

export interface StateEvent {
    type: string;
    state_key: string;
    content: Record<string, unknown>;
}

/** The one method of the bot SDK's MatrixClient used here. */
export interface RoomStateReader {
    getRoomState(roomId: string): Promise<unknown[]>;
}

interface PowerLevels {
    users: Record<string, number>;
    redact: number;
    usersDefault: number;
    /** The level needed to send an m.room.message (its own entry in `events`, else `events_default`). */
    message: number;
}

function powerLevels(state: StateEvent[]): PowerLevels {
    const content = state.find((e) => e.type === "m.room.power_levels")?.content ?? {};
    const users = (typeof content.users === "object" && content.users !== null ? content.users : {}) as Record<
        string,
        number
    >;
    const redact = typeof content.redact === "number" ? content.redact : 50;
    const usersDefault = typeof content.users_default === "number" ? content.users_default : 0;
    const events = (typeof content.events === "object" && content.events !== null ? content.events : {}) as Record<
        string,
        unknown
    >;
    const eventsDefault = typeof content.events_default === "number" ? content.events_default : 0;
    const message = typeof events["m.room.message"] === "number" ? events["m.room.message"] : eventsDefault;
    return { users, redact, usersDefault, message };
}

/**
 * Since room version 12 the room's creators (the create event's sender and `additional_creators`) have power
 * above any level and are not listed in the power levels.
 */
export function creatorsWithoutLimit(state: StateEvent[]): [string, number][] {
    const create = state.find((e) => e.type === "m.room.create" && e.state_key === "") as
        (StateEvent & { sender?: string }) | undefined;
    const version = Number(create?.content.room_version ?? "1");
    if (!create || !(version >= 12)) return [];
    const extra = Array.isArray(create.content.additional_creators) ? create.content.additional_creators : [];
    return [create.sender, ...extra]
        .filter((user): user is string => typeof user === "string")
        .map((user) => [user, Infinity]);
}

/** The problems of a room, from its current state. */
export function roomProblems(state: StateEvent[], sender: string): RoomProblem[] {
    const problems: RoomProblem[] = [];
    const content = (type: string) => state.find((e) => e.type === type && e.state_key === "")?.content;
    const joinRule = content("m.room.join_rules")?.join_rule;
    if (joinRule === "public") problems.push({ code: "joinable", detail: "anyone can join (join rule public)" });
    if (content("m.room.history_visibility")?.history_visibility === "world_readable") {
        problems.push({ code: "world_readable", detail: "anyone can read it (history visibility world_readable)" });
    }
    const server = serverNameOf(sender);
    const remote = state
        .filter((e) => e.type === "m.room.member" && e.content.membership === "join")
        .map((e) => e.state_key)
        .filter((user) => serverNameOf(user) !== server);
    if (remote.length > 0) {
        problems.push({ code: "federated", detail: `members from other servers read it: ${remote.join(", ")}` });
    }
    if (content("m.room.encryption")) {
        problems.push({ code: "encrypted", detail: "it is encrypted, and the appservice posts without encryption" });
    }
    const levels = powerLevels(state);
    const redactors = [...creatorsWithoutLimit(state), ...Object.entries(levels.users)]
        .filter(([user, level]) => user !== sender && level >= levels.redact)
        .map(([user, level]) => `${user} (${level === Infinity ? "room creator" : level})`);
    if (levels.usersDefault >= levels.redact) redactors.push(`every member (users_default ${levels.usersDefault})`);
    if (redactors.length > 0) {
        problems.push({
            code: "redactors",
            detail: `users besides the sender may redact audit events (redact level ${levels.redact}): ${redactors.join(", ")}`,
        });
    }
    const visibility = content("m.room.history_visibility")?.history_visibility;
    if (visibility === "joined" || visibility === "invited") {
        problems.push({
            code: "history_hidden",
            detail:
                `members cannot read what was posted before they ${visibility === "joined" ? "joined" : "were invited"} ` +
                `(history visibility ${visibility}): an auditor added later misses the earlier trail; set it to shared`,
        });
    }
    const posters = postersBesidesSender(state, levels, sender);
    if (posters.length > 0) {
        problems.push({
            code: "posters",
            detail:
                `members besides the sender may post messages (level ${levels.message} for m.room.message), and an ` +
                `audit-looking one would fail verify as a look-alike: ${posters.join(", ")}`,
        });
    }
    const maxLifetime = content("m.room.retention")?.max_lifetime;
    if (typeof maxLifetime === "number") {
        problems.push({
            code: "retention",
            detail:
                `it has a retention policy (m.room.retention max_lifetime ${maxLifetime} ms): a homeserver with ` +
                "retention enabled purges older audit events, and verify then finds the trail cut",
        });
    }
    return problems;
}

/** Joined or invited members other than the sender whose level reaches the level for m.room.message. */
function postersBesidesSender(state: StateEvent[], levels: PowerLevels, sender: string): string[] {
    const creators = new Map(creatorsWithoutLimit(state));
    return state
        .filter((e) => e.type === "m.room.member" && ["join", "invite"].includes(String(e.content.membership)))
        .map((e) => e.state_key)
        .filter((user) => user !== sender)
        .map((user): [string, number] => [user, creators.get(user) ?? levels.users[user] ?? levels.usersDefault])
        .filter(([, level]) => level >= levels.message)
        .map(([user, level]) => `${user} (${level === Infinity ? "room creator" : level})`);
}

export async function checkAuditRoom(client: RoomStateReader, roomId: string, sender: string): Promise<RoomProblem[]> {
    return roomProblems((await client.getRoomState(roomId)) as StateEvent[], sender);
}

export function logRoomProblems(roomId: string, problems: RoomProblem[]): void {
    for (const problem of problems) {
        log.warn(`The audit room ${roomId} is not safe for an audit trail: ${problem.detail}. See README.`);
    }
}
