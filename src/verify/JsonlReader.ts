/**
 * `verify --jsonl`: the export's lines as the audit events they stand for, so TrailVerifier checks a file exactly
 * as it checks the room (chain, seqs, contents, bodies, liveness). Each line becomes an m.room.message from
 * EXPORT_SENDER with the line's message as its body and its record under the record key; its "event ID" names the
 * file and line, so a problem points at it. A line that is not a record reads as a message without a chain (the
 * verifier reports it). Rotated files are read in the order given, streaming, line by line.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { RoomEvent } from "../devenv/MatrixHttp.js";
import { parseLine } from "../export/ExportLine.js";
import { RECORD_KEY } from "../modules/audit/Record.js";

/** The sender every line is read as (the export has no Matrix sender). */
export const EXPORT_SENDER = "@export:jsonl";

export function lineEvent(file: string, lineNo: number, line: string): RoomEvent {
    const entry = parseLine(line);
    const eventId = `${file}:${lineNo}`;
    if (entry === null) {
        return {
            event_id: eventId,
            type: "m.room.message",
            sender: EXPORT_SENDER,
            origin_server_ts: 0,
            content: { body: line },
        };
    }
    return {
        event_id: eventId,
        type: "m.room.message",
        sender: EXPORT_SENDER,
        origin_server_ts: Number(entry.record.ts),
        content: { msgtype: "m.text", body: entry.body, [RECORD_KEY]: entry.record },
    };
}

export async function* jsonlEvents(files: readonly string[]): AsyncGenerator<RoomEvent> {
    for (const file of files) {
        const lines = createInterface({ input: createReadStream(file, "utf8"), crlfDelay: Infinity });
        let lineNo = 0;
        for await (const line of lines) {
            lineNo++;
            if (line.length > 0) yield lineEvent(file, lineNo, line);
        }
    }
}
