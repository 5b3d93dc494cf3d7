/** Syntax checks for Matrix identifiers (https://spec.matrix.org/latest/appendices/#identifier-grammar). */

const SERVER_NAME = String.raw`(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?`;
// Historical user IDs allow any printable ASCII except ':' in the localpart.
const USER_ID = new RegExp(String.raw`^@[\x21-\x39\x3b-\x7e]+:${SERVER_NAME}$`);
// Room IDs are opaque; since room version 12 they need not carry a server name.
const ROOM_ID = /^![\x21-\x7e]+$/;
const ROOM_ALIAS = new RegExp(String.raw`^#[^:\s]+:${SERVER_NAME}$`);
const SERVER_NAME_ONLY = new RegExp(`^${SERVER_NAME}$`);

/** Identifiers are capped at 255 bytes by the spec. */
export const MAX_IDENTIFIER_BYTES = 255;

function withinLimit(value: string): boolean {
    return Buffer.byteLength(value, "utf8") <= MAX_IDENTIFIER_BYTES;
}

export function isUserId(value: string): boolean {
    return USER_ID.test(value) && withinLimit(value);
}

export function isRoomId(value: string): boolean {
    return ROOM_ID.test(value) && withinLimit(value);
}

export function isRoomAlias(value: string): boolean {
    return ROOM_ALIAS.test(value) && withinLimit(value);
}

export function isServerName(value: string): boolean {
    return SERVER_NAME_ONLY.test(value);
}

/** The server name part of a user ID or room alias. */
export function serverNameOf(id: string): string {
    return id.slice(id.indexOf(":") + 1);
}

export function localpartOf(userId: string): string {
    return userId.slice(1, userId.indexOf(":"));
}
