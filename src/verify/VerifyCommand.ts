/**
 * `matrix-account-data-audit verify -c config.yaml -f registration.yaml [--from SEQ] [--json]`: reads the
 * audit room as the sender and checks the trail (Verifier.ts). Exit code 0: intact; 1: broken (the first
 * problem is named with its seq and event ID); 2: could not check. Progress goes to stderr, the report to
 * stdout. Made for cron and for auditors.
 */
import { readFile } from "node:fs/promises";
import { MatrixClient } from "@vector-im/matrix-bot-sdk";
import yaml from "js-yaml";
import { loadConfigFile } from "../config/loadConfig.js";
import { readRoom, resolveRoom } from "./RoomReader.js";
import { type Report, verifyEvents } from "./Verifier.js";

export const VERIFY_USAGE =
    "Usage: matrix-account-data-audit verify -c CONFIG_FILE -f REGISTRATION_FILE [--from SEQ] [--json]\n";

interface VerifyArgs {
    config: string;
    registration: string;
    fromSeq: number;
    json: boolean;
}

function parseArgs(argv: string[]): VerifyArgs | string {
    const args: Partial<VerifyArgs> = { fromSeq: 0, json: false };
    for (let i = 0; i < argv.length; i++) {
        const [arg, value] = [argv[i], argv[i + 1]];
        if (arg === "--json") {
            args.json = true;
            continue;
        }
        if (value === undefined) return `Missing a value after ${arg}`;
        if (arg === "-c" || arg === "--config") args.config = value;
        else if (arg === "-f" || arg === "--file") args.registration = value;
        else if (arg === "--from" && /^\d+$/.test(value)) args.fromSeq = Number(value);
        else return `Unknown argument: ${arg} ${value}`;
        i++;
    }
    if (!args.config || !args.registration) return "Both -c and -f are required";
    return args as VerifyArgs;
}

function time(ts: number | null): string {
    return ts === null ? "?" : new Date(ts).toISOString();
}

export function describeReport(roomId: string, report: Report): string {
    const lines = [
        `Audit room ${roomId}: ${report.records} records, seq ${report.firstSeq ?? "-"}–${report.lastSeq ?? "-"}, ` +
            `${time(report.firstTs)} – ${time(report.lastTs)}; ${report.omittedByPolicy} seqs left out by the audit ` +
            `policy; ${report.unchained} older messages without a hash chain (not checked).`,
    ];
    for (const dup of report.duplicates) {
        lines.push(`Info: seq ${dup.seq} was posted ${dup.eventIds.length} times (${dup.eventIds.join(", ")})`);
    }
    const [first, ...rest] = report.problems;
    if (!first) {
        lines.push("INTACT");
        return lines.join("\n");
    }
    const at = (p: typeof first) => `${p.kind}${p.seq !== null ? ` at seq ${p.seq}` : ""} (event ${p.eventId})`;
    lines.push(`BROKEN: ${at(first)}: ${first.detail}`);
    for (const problem of rest) lines.push(`  also: ${at(problem)}: ${problem.detail}`);
    return lines.join("\n");
}

/** Runs the command; resolves with the exit code. */
export async function runVerify(argv: string[]): Promise<number> {
    const args = parseArgs(argv);
    if (typeof args === "string") {
        process.stderr.write(`${args}\n${VERIFY_USAGE}`);
        return 2;
    }
    try {
        const { config } = await loadConfigFile(args.config);
        const registration = yaml.load(await readFile(args.registration, "utf8")) as { as_token?: unknown };
        if (typeof registration?.as_token !== "string") throw new Error(`${args.registration} has no as_token`);
        const client = new MatrixClient(config.homeserver.url, registration.as_token);
        client.impersonateUserId(config.sender);
        const roomId = await resolveRoom(client, config.audit_room);
        const events = await readRoom(client, roomId, (n) => process.stderr.write(`verify: read ${n} events\n`));
        const report = verifyEvents(events, config.sender, args.fromSeq);
        process.stdout.write(
            args.json
                ? `${JSON.stringify({ room_id: roomId, ...report }, null, 2)}\n`
                : `${describeReport(roomId, report)}\n`,
        );
        return report.intact ? 0 : 1;
    } catch (err) {
        process.stderr.write(`verify: could not check the trail: ${(err as Error).message}\n`);
        return 2;
    }
}
