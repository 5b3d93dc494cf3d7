/**
 * `matrix-account-data-audit verify`: reads the audit room and checks the trail (Verifier.ts). Two ways in:
 * admins with the appservice's config and registration (reads as the sender), and auditors with their own
 * account (`--homeserver URL --access-token TOKEN --room ROOM`: any member of the audit room, no secret that
 * lets them post as the sender). Exit code 0: intact; 1: broken (the first problem named with its seq and event
 * ID), or stale (`--max-age`); 2: could not check. Progress goes to stderr, the report to stdout. Made for cron.
 */
import { readFile } from "node:fs/promises";
import { MatrixClient } from "@vector-im/matrix-bot-sdk";
import yaml from "js-yaml";
import { loadConfigFile } from "../config/loadConfig.js";
import type { MatrixRequester } from "../matrix/EventSender.js";
import { RECORD_KEY } from "../modules/audit/Record.js";
import { EXPORT_SENDER, jsonlEvents } from "./JsonlReader.js";
import { chainedRecordsOf } from "./RecordChecks.js";
import { resolveRoom, roomEvents } from "./RoomReader.js";
import { type Report, TrailVerifier } from "./Verifier.js";
import { loadState, saveState } from "./VerifyState.js";

/** Twice the host module's default checkpoint interval (3600 s): an alive trail has a record at least that often. */
export const DEFAULT_MAX_AGE_SECONDS = 7200;
/** Incremental runs leave the last minute's records to the next run (see VerifyOptions.settleMs). */
const SETTLE_MS = 60_000;

export const VERIFY_USAGE =
    "Usage: matrix-account-data-audit verify -c CONFIG_FILE -f REGISTRATION_FILE [options]\n" +
    "       matrix-account-data-audit verify --homeserver URL --access-token TOKEN --room ROOM [--sender USER_ID] [options]\n" +
    "       matrix-account-data-audit verify [options] --jsonl FILE...   (the export's files, rotated ones first)\n" +
    "Options: --from SEQ   check from this seq on\n" +
    `         --max-age SECONDS   the newest record must be at most this old (default ${DEFAULT_MAX_AGE_SECONDS}: twice the\n` +
    "                             host module's checkpoint_interval_seconds; 0 turns the check off)\n" +
    "         --state FILE   keep where this run stopped; the next run reads only what is new\n" +
    "         --json   the report as JSON\n" +
    "The auditor's token may also come from the MATRIX_ACCESS_TOKEN environment variable.\n";

interface VerifyArgs {
    config?: string;
    registration?: string;
    homeserver?: string;
    accessToken?: string;
    room?: string;
    sender?: string;
    fromSeq: number;
    maxAgeSeconds: number;
    state?: string;
    json: boolean;
    /** `--jsonl FILE…`: check the export's files instead of the room. */
    jsonl?: string[];
}

const VALUED: Record<string, keyof VerifyArgs> = {
    "-c": "config",
    "--config": "config",
    "-f": "registration",
    "--file": "registration",
    "--homeserver": "homeserver",
    "--access-token": "accessToken",
    "--room": "room",
    "--sender": "sender",
    "--state": "state",
};

export function parseVerifyArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): VerifyArgs | string {
    const args: VerifyArgs = { fromSeq: 0, maxAgeSeconds: DEFAULT_MAX_AGE_SECONDS, json: false };
    for (let i = 0; i < argv.length; i++) {
        const [arg, value] = [argv[i] as string, argv[i + 1]];
        if (arg === "--jsonl") {
            // Every argument up to the next option is a file.
            args.jsonl ??= [];
            while (i + 1 < argv.length && !(argv[i + 1] as string).startsWith("--"))
                args.jsonl.push(argv[++i] as string);
            continue;
        }
        if (arg === "--json") {
            args.json = true;
            continue;
        }
        if (value === undefined) return `Missing a value after ${arg}`;
        const key = VALUED[arg];
        if (key) (args as unknown as Record<string, string>)[key] = value;
        else if (arg === "--from" && /^\d+$/.test(value)) args.fromSeq = Number(value);
        else if (arg === "--max-age" && /^\d+$/.test(value)) args.maxAgeSeconds = Number(value);
        else return `Unknown argument: ${arg} ${value}`;
        i++;
    }
    if (args.jsonl !== undefined) {
        if (args.jsonl.length === 0) return "Give the export's files after --jsonl";
        if (args.config ?? args.registration ?? args.homeserver ?? args.room ?? args.state) {
            return "--jsonl reads files: give no room, config or --state with it";
        }
        return args;
    }
    const admin = args.config !== undefined || args.registration !== undefined;
    const auditor = args.homeserver !== undefined || args.room !== undefined || args.accessToken !== undefined;
    if (admin && auditor) return "Give either -c and -f, or --homeserver, --access-token and --room, not both";
    // The environment's token is only for the auditor's form: an admin with it in their shell still runs -c -f.
    if (!admin) args.accessToken ??= env.MATRIX_ACCESS_TOKEN || undefined;
    if (admin && (!args.config || !args.registration)) return "Both -c and -f are required";
    if (!admin && (!args.homeserver || !args.accessToken || !args.room)) {
        return "Give -c and -f (admins), or --homeserver, --access-token and --room (auditors)";
    }
    return args;
}

function time(ts: number | null): string {
    return ts === null ? "?" : new Date(ts).toISOString();
}

export function describeReport(roomId: string, report: Report, what = "Audit room"): string {
    const start = {
        genesis: "from the chain's first record",
        from: "from --from",
        state: "continuing the last run",
        unanchored: "NOT from the chain's first record",
    }[report.start ?? "unanchored"];
    const newest = report.newest ? `; newest record seq ${report.newest.seq} at ${time(report.newest.ts)}` : "";
    const lines = [
        `${what} ${roomId}: ${report.records} records, seq ${report.firstSeq ?? "-"}–${report.lastSeq ?? "-"} ` +
            `(${report.records > 0 ? start : "none"}), ${time(report.firstTs)} – ${time(report.lastTs)}${newest}; ` +
            `${report.omittedByPolicy} seqs left out by the audit policy; ${report.unchained} older messages ` +
            "without a hash chain (not checked).",
    ];
    for (const dup of report.duplicates) {
        lines.push(`Info: seq ${dup.seq} was posted more than once, identically (${dup.eventIds.join(", ")})`);
    }
    const [first, ...rest] = report.problems;
    if (!first) {
        lines.push("INTACT");
        return lines.join("\n");
    }
    const at = (p: typeof first) =>
        `${p.kind}${p.seq !== null ? ` at seq ${p.seq}` : ""}${p.eventId ? ` (event ${p.eventId})` : ""}`;
    lines.push(`BROKEN: ${at(first)}: ${first.detail}`);
    for (const problem of rest) lines.push(`  also: ${at(problem)}: ${problem.detail}`);
    return lines.join("\n");
}

interface Reader {
    client: MatrixRequester;
    roomId: string;
    sender: string | null;
}

async function openAsAdmin(args: VerifyArgs): Promise<Reader> {
    const { config } = await loadConfigFile(args.config as string);
    const registration = yaml.load(await readFile(args.registration as string, "utf8")) as { as_token?: unknown };
    if (typeof registration?.as_token !== "string") throw new Error(`${args.registration} has no as_token`);
    const client = new MatrixClient(config.homeserver.url, registration.as_token);
    client.impersonateUserId(config.sender);
    return { client, roomId: await resolveRoom(client, config.audit_room), sender: config.sender };
}

async function openAsAuditor(args: VerifyArgs): Promise<Reader> {
    const client = new MatrixClient(args.homeserver as string, args.accessToken as string);
    return { client, roomId: await resolveRoom(client, args.room as string), sender: args.sender ?? null };
}

/** Without --sender: whoever posted the room's first record with a hash chain (the report names it). */
async function findSender(client: MatrixRequester, roomId: string): Promise<string | null> {
    for await (const event of roomEvents(client, roomId)) {
        if (event.type === "m.room.message" && RECORD_KEY in event.content && chainedRecordsOf(event) !== null) {
            return event.sender;
        }
    }
    return null;
}

/** Runs the command; resolves with the exit code. */
export async function runVerify(argv: string[]): Promise<number> {
    const args = parseVerifyArgs(argv);
    if (typeof args === "string") {
        process.stderr.write(`${args}\n${VERIFY_USAGE}`);
        return 2;
    }
    if (args.jsonl) return verifyJsonl(args, args.jsonl);
    try {
        const { client, roomId, sender: given } = args.config ? await openAsAdmin(args) : await openAsAuditor(args);
        const state = args.state ? await loadState(args.state) : null;
        if (state && state.roomId !== roomId) throw new Error(`${args.state} belongs to room ${state.roomId}`);
        const sender = given ?? state?.sender ?? (await findSender(client, roomId));
        if (sender === null) throw new Error(`No audit record with a hash chain in ${roomId}: give --sender`);
        if (state && state.sender !== sender) throw new Error(`${args.state} belongs to sender ${state.sender}`);
        process.stderr.write(`verify: audit records of ${sender} in ${roomId}\n`);
        const verifier = new TrailVerifier(sender, {
            fromSeq: args.fromSeq,
            maxAgeMs: args.maxAgeSeconds > 0 ? args.maxAgeSeconds * 1000 : null,
            after: state?.verified ?? null,
            skipEventIds: state?.checkedAfter ?? [],
            settleMs: args.state ? SETTLE_MS : undefined,
        });
        const progress = (n: number) => process.stderr.write(`verify: read ${n} events\n`);
        for await (const event of roomEvents(client, roomId, state?.afterEventId ?? null, progress)) {
            verifier.add(event);
        }
        const report = verifier.finish();
        const resume = verifier.resumePoint();
        // Only a clean run moves the state on: a problem is reported again by every run until it is dealt with.
        const clean = report.problems.every((p) => p.kind === "stale");
        if (args.state && resume && clean) await saveState(args.state, { roomId, sender, ...resume });
        process.stdout.write(
            args.json
                ? `${JSON.stringify({ room_id: roomId, sender, ...report }, null, 2)}\n`
                : `${describeReport(roomId, report)}\n`,
        );
        return report.intact ? 0 : 1;
    } catch (err) {
        process.stderr.write(`verify: could not check the trail: ${(err as Error).message}\n`);
        return 2;
    }
}

/** `verify --jsonl FILE…`: the export checked like the room; a seq in it twice is a problem (exactly once). */
async function verifyJsonl(args: VerifyArgs, files: string[]): Promise<number> {
    try {
        const verifier = new TrailVerifier(EXPORT_SENDER, {
            fromSeq: args.fromSeq,
            maxAgeMs: args.maxAgeSeconds > 0 ? args.maxAgeSeconds * 1000 : null,
        });
        for await (const event of jsonlEvents(files)) verifier.add(event);
        const report = verifier.finish();
        for (const dup of report.duplicates) {
            report.problems.push({
                kind: "conflicting_records",
                seq: dup.seq,
                eventId: dup.eventIds.join(", "),
                detail: "the export holds this seq more than once",
            });
        }
        report.intact = report.problems.length === 0;
        const name = files.join(", ");
        process.stdout.write(
            args.json
                ? `${JSON.stringify({ files, ...report }, null, 2)}\n`
                : `${describeReport(name, report, "Export")}\n`,
        );
        return report.intact ? 0 : 1;
    } catch (err) {
        process.stderr.write(`verify: could not check the export: ${(err as Error).message}\n`);
        return 2;
    }
}
