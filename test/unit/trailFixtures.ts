/**
 * Audit-room events for verify's unit tests, built as the appservice posts them (chain v2, full records with
 * content, salt and commitment), with each hash computed from its fields the way README's worked examples do.
 */
import { createHash } from "node:crypto";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { auditMessageBody } from "../../src/modules/audit/Messages.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { GENESIS, recordHashV2 } from "../../src/verify/Chain.js";

export const SENDER = "@audit:example.org";
export const ALICE = "@alice:example.org";

export type Fields = Record<string, unknown>;

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/** The hash a v2 record's fields give (computed here from README's canonical form, not by the verifier). */
export function hashOf(f: Fields): string {
    return recordHashV2({
        seq: f.seq as number,
        changeId: f.change_id as string,
        ts: f.ts as number,
        kind: f.kind === "change" && f.recovered === true ? "recovered" : (f.kind as string),
        userId: f.kind === "change" || f.kind === "deactivation" ? (f.user_id as string) : "",
        roomId: f.kind === "change" ? (f.room_id as string | null) : null,
        type: f.kind === "change" ? (f.type as string) : "",
        contentSize: f.kind === "change" ? (f.content_size as number) : null,
        commitment: f.kind === "change" ? (f.commitment as string) : null,
        keyedDigest: (f.keyed_digest as string | null) ?? null,
        prevHash: f.prev_hash as string,
    });
}

/** A full v2 change record of `{"n": seq}` linked after `prev` (its hash recomputed after `extra`). */
export function changeRecord(seq: number, prev: { seq: number; hash: string } | null, extra: Fields = {}): Fields {
    const content = `{"n":${seq}}`;
    const salt = sha256(`salt${seq}`).slice(0, 32);
    const fields: Fields = {
        version: 1,
        kind: "change",
        seq,
        change_id: `c${seq}`,
        ts: 1_000_000 + seq * 1000,
        user_id: ALICE,
        room_id: null,
        type: "m.t",
        level: "full",
        recovered: false,
        content_size: content.length,
        content,
        commitment: `sha256:${sha256(salt + content)}`,
        content_salt: salt,
        chain_version: 2,
        keyed_digest: sha256(`key:${seq}`),
        prev_hash: prev?.hash ?? GENESIS,
        prev_posted: prev ?? { seq: 0, hash: GENESIS },
        ...extra,
    };
    fields.hash = hashOf(fields);
    return fields;
}

/** The body line a full change record of `{"n": seq}` shows. */
export const lineOf = (f: Fields): string =>
    auditMessageBody(f.user_id as string, f.room_id as string | null, f.type as string, `{"n": ${f.seq as number}}`);

export function message(id: string, sender: string, body: string, record?: object): RoomEvent {
    return {
        event_id: id,
        type: "m.room.message",
        sender,
        origin_server_ts: 0,
        content: { msgtype: "m.text", body, ...(record ? { [RECORD_KEY]: record } : {}) },
    };
}

/** A single change's event ($s<seq>). */
export const changeEvent = (f: Fields, id = `$s${f.seq as number}`): RoomEvent => message(id, SENDER, lineOf(f), f);

/** The records of seqs 1..count, each linked to the one before. */
export function chainOf(count: number): Fields[] {
    const records: Fields[] = [];
    for (let seq = 1; seq <= count; seq++) {
        const before = records.at(-1);
        records.push(changeRecord(seq, before ? { seq: before.seq as number, hash: before.hash as string } : null));
    }
    return records;
}

/** A digest-mode event holding `records` (uncompacted: expandRecords leaves full records as they are). */
export function digestEvent(id: string, records: Fields[]): RoomEvent {
    return message(id, SENDER, records.map(lineOf).join("\n"), { version: 1, kind: "digest", records });
}

export const recordIn = (event: RoomEvent): Fields => event.content[RECORD_KEY] as Fields;
