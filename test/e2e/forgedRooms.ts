/**
 * What an attacker holding the appservice's token (or a room admin) can do to an audit room, for the e2e tests
 * of `verify`: post as the sender through the client-server API, redact as the room's creator, purge history
 * with the admin API. Each test gets a room of its own (created by the sender, the auditor invited and
 * joined) into which the sender posts copies of a genuine trail's events, with the test's
 * forgery, and `verify` then reads it as an auditor would (`--homeserver --access-token --room`), so tests
 * neither depend on each other's damage nor on their order.
 */
import { randomBytes } from "node:crypto";
import { MatrixHttp, type RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { runVerifyCommand, type TestEnv, type VerifyRun } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { linkHash } from "../../src/verify/RecordChecks.js";

export type Fields = Record<string, unknown> & { seq: number; hash: string; prev_hash: string };

/** The structured record of an audit event (a digest's is `{kind: "digest", records: [...]}`). */
export function recordOf(event: RoomEvent | undefined): Fields {
    return event?.content[RECORD_KEY] as Fields;
}

/** The seqs an audit event holds (a digest's, in its order). */
export function seqsOf(event: RoomEvent): number[] {
    const record = recordOf(event);
    if (record?.kind === "digest") return (record.records as { seq: number }[]).map((r) => r.seq);
    return typeof record?.seq === "number" ? [record.seq] : [];
}

/** The genuine event that holds `seq`. */
export function eventOf(trail: readonly RoomEvent[], seq: number): RoomEvent {
    const event = trail.find((e) => seqsOf(e).includes(seq));
    if (!event) throw new Error(`No audit event holds seq ${seq}`);
    return event;
}

/** A deep copy of an event's content, to forge from. */
export function contentCopy(event: RoomEvent): Record<string, unknown> {
    return structuredClone(event.content);
}

/** The hash a record's fields give, as anyone can compute it from what the room publishes. */
export function rehash(fields: Fields): Fields {
    fields.hash = linkHash(fields.seq, fields, fields.prev_hash);
    return fields;
}

/** The sender, through the appservice's token (`?user_id=`), as the appservice and an attacker with it post. */
export function asSender(env: TestEnv): MatrixHttp {
    return new MatrixHttp(env.synapse.baseUrl, env.senderUserId, env.registration.getAppServiceToken() as string);
}

let txn = 0;

/** Posts `content` as the sender; its event ID. */
export async function postAsSender(env: TestEnv, roomId: string, content: Record<string, unknown>): Promise<string> {
    const res = await asSender(env).request<{ event_id: string }>(
        "PUT",
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/forge${Date.now()}.${txn++}` +
            `?user_id=${encodeURIComponent(env.senderUserId)}`,
        content,
    );
    return res.event_id;
}

/**
 * A fresh room: the sender creates it (appservices are not rate-limited; its creator may redact, as the
 * audit room's creator may), the auditor is invited and joins at the default power level (so it may post).
 */
export async function newRoom(env: TestEnv): Promise<string> {
    const { room_id: roomId } = await asSender(env).request<{ room_id: string }>(
        "POST",
        `/_matrix/client/v3/createRoom?user_id=${encodeURIComponent(env.senderUserId)}`,
        { name: `forged ${randomBytes(3).toString("hex")}`, preset: "private_chat", invite: [env.auditor.http.userId] },
    );
    await env.auditor.http.join(roomId);
    return roomId;
}

/**
 * A new room holding copies of `events` posted by the sender, in order; returns it and the copies' event IDs
 * (index for index).
 */
export async function replayRoom(
    env: TestEnv,
    events: readonly (RoomEvent | Record<string, unknown>)[],
): Promise<{ roomId: string; eventIds: string[] }> {
    const roomId = await newRoom(env);
    const eventIds: string[] = [];
    for (const event of events) {
        const content = "event_id" in event ? (event as RoomEvent).content : event;
        eventIds.push(await postAsSender(env, roomId, content));
    }
    return { roomId, eventIds };
}

/** The auditor's form of `verify`, on `roomId`: the homeserver, the auditor's own token, the room. */
export function auditorArgs(env: TestEnv, roomId: string): string[] {
    return ["--homeserver", env.synapse.baseUrl, "--access-token", env.auditor.http.accessToken, "--room", roomId];
}

/** `verify --json` on `roomId` as the auditor, with no liveness check unless `args` ask for one. */
export function verifyRoom(env: TestEnv, roomId: string, args: string[] = []): Promise<VerifyRun> {
    return runVerifyCommand([...auditorArgs(env, roomId), "--max-age", "0", "--json", ...args]);
}

export interface ReportedProblem {
    kind: string;
    seq: number | null;
    eventId: string;
    detail: string;
}

export function problemsOf(run: VerifyRun): ReportedProblem[] {
    return (run.report?.problems ?? []) as ReportedProblem[];
}

/** Redacts an event as the sender, the room's creator (an attacker with the appservice's token). */
export async function redact(env: TestEnv, roomId: string, eventId: string): Promise<void> {
    await asSender(env).request(
        "PUT",
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/redact/${encodeURIComponent(eventId)}/r${txn++}` +
            `?user_id=${encodeURIComponent(env.senderUserId)}`,
        { reason: "tidying up" },
    );
}

/**
 * Purges the room's history before `eventId` with Synapse's admin API, local events included (as retention or
 * an admin's purge would), as the auditor (a server admin in the test environment); resolves once it is done.
 */
export async function purgeBefore(env: TestEnv, roomId: string, eventId: string, timeoutMs = 30_000): Promise<void> {
    const { purge_id: purgeId } = await env.auditor.http.request<{ purge_id: string }>(
        "POST",
        `/_synapse/admin/v1/purge_history/${encodeURIComponent(roomId)}`,
        { delete_local_events: true, purge_up_to_event_id: eventId },
    );
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const { status } = await env.auditor.http.request<{ status: string }>(
            "GET",
            `/_synapse/admin/v1/purge_history_status/${encodeURIComponent(purgeId)}`,
        );
        if (status === "complete") return;
        if (status === "failed") throw new Error(`The purge of ${roomId} failed`);
        if (Date.now() > deadline) throw new Error(`The purge of ${roomId} did not complete (${status})`);
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}
