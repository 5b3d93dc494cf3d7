/**
 * Reading a change's content when it is about to be recorded, not when its batch arrives.
 *
 * The host module keeps several batches in flight (its `batches_in_flight`, in full batches' worth of bytes), so
 * that one user's backlog of slow records never keeps other users' changes from the appservice. A content's JSON
 * text is cheap to hold; read (every value an object, its number text kept) it costs up to some 70 bytes of memory
 * per byte, and a user can store megabytes of dense arrays. So a batch's contents stay text until their change
 * is dispatched (ChangeProcessor) or exported, and each is read then, once, and dropped after.
 */
import { LazyContent } from "../json/LazyContent.js";
import { LosslessObject, parseLossless } from "../json/LosslessJson.js";
import { pythonDumpsCompactText } from "../json/PythonJson.js";
import { isPlainSecretStorageItem } from "../modules/audit/Policy.js";
import type { AccountDataChange, AuditUnit } from "../modules/ModuleHost.js";

/**
 * A content whose text is longer than this is read without building its values (LazyContent): its text alone is
 * four times what one event can show, so the room shows it cut, from its dump, which is made from the text in one
 * pass. Reading a million-value array value by value costs the appservice some 0.3 s and 70 MB; one user's burst
 * of them would hold everyone else's records back for as long.
 */
export const LARGE_CONTENT_CHARS = 256 * 1024;

/** The content of a change whose JSON text has not been read yet (see readContent). */
export const UNREAD_CONTENT: LosslessObject = new LosslessObject();

/**
 * `change` with its content read from its JSON text; a text that is not the JSON of an object gives an empty
 * content and a `contentError` (the change is then quarantined, not the batch refused). A change already read,
 * or sent without its content, comes back as it is.
 */
export function readContent(change: AccountDataChange): AccountDataChange {
    if (change.content !== UNREAD_CONTENT || change.contentError !== undefined) return change;
    if (change.contentJson.length > LARGE_CONTENT_CHARS) return readLargeContent(change);
    let parsed: unknown;
    try {
        parsed = parseLossless(change.contentJson);
    } catch (err) {
        return {
            ...change,
            content: new LosslessObject(),
            contentError: `the content is not valid JSON: ${(err as Error).message}`,
        };
    }
    if (!(parsed instanceof LosslessObject)) {
        return {
            ...change,
            content: new LosslessObject(),
            contentError: "the content is not the JSON text of an object",
        };
    }
    return { ...change, content: parsed };
}

function readLargeContent(change: AccountDataChange): AccountDataChange {
    let plain: unknown;
    try {
        plain = JSON.parse(change.contentJson);
    } catch (err) {
        return {
            ...change,
            content: new LosslessObject(),
            contentError: `the content is not valid JSON: ${(err as Error).message}`,
        };
    }
    if (typeof plain !== "object" || plain === null || Array.isArray(plain)) {
        return {
            ...change,
            content: new LosslessObject(),
            contentError: "the content is not the JSON text of an object",
        };
    }
    const secret = isPlainSecretStorageItem(plain as Record<string, unknown>);
    return {
        ...change,
        content: new LazyContent(change.contentJson, pythonDumpsCompactText(change.contentJson), secret),
    };
}

/** `unit` with the content of each of its changes read (see readContent). */
export function readUnitContent(unit: AuditUnit): AuditUnit {
    if (unit.kind === "digest") return { ...unit, changes: unit.changes.map(readContent) };
    if (unit.kind === undefined || unit.kind === "change") return readContent(unit);
    return unit;
}
