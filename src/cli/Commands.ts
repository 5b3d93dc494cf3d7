/**
 * The command line, one table for every subcommand: the parser and `--help` read the same table, so the help
 * cannot leave out a command or an option the parser takes. Every command names its files the same way
 * (`-c/--config` the appservice config, `-f/--file` the registration), as the bridge library's own CLI does.
 */

export interface OptionSpec {
    /** Short and long forms, e.g. ["-c", "--config"]. */
    flags: string[];
    /** The option's value in the help (e.g. FILE); absent for a switch. */
    value?: string;
    help: string;
    /** May be given more than once (the values are collected in order). */
    repeat?: boolean;
}

export interface CommandSpec {
    /** The word after the program name; "" runs the appservice, "-r" writes a registration. */
    name: string;
    summary: string;
    /** Positional arguments in the help (e.g. "USER_ID..."); none are taken if absent. */
    positional?: string;
    options: OptionSpec[];
}

export const PROGRAM = "matrix-account-data-audit";
/** Below this the bridge library and the bot SDK are not supported (their `engines` say >=22). */
export const MIN_NODE_MAJOR = 22;

const CONFIG: OptionSpec = { flags: ["-c", "--config"], value: "FILE", help: "the appservice's config.yaml" };
const REGISTRATION: OptionSpec = {
    flags: ["-f", "--file"],
    value: "FILE",
    help: "the registration (default: registration.yaml)",
};
const HELP: OptionSpec = { flags: ["-h", "--help"], help: "show this help" };

export const COMMANDS: readonly CommandSpec[] = [
    {
        name: "",
        summary: "Run the appservice.",
        options: [
            CONFIG,
            REGISTRATION,
            { flags: ["-p", "--port"], value: "PORT", help: "listen here, not listen.port" },
        ],
    },
    {
        name: "-r",
        summary: "Write a new registration (fresh tokens, the sender's namespace, rate_limited: false).",
        options: [
            { flags: ["-u", "--url"], value: "URL", help: "where the homeserver reaches the appservice (required)" },
            { ...REGISTRATION, help: "where to write it (default: registration.yaml)" },
            {
                flags: ["-l", "--localpart"],
                value: "LOCALPART",
                help: "the sender's localpart (default: account-data-audit)",
            },
            {
                flags: ["--alias"],
                value: "#ALIAS:SERVER",
                help: "reserve this room alias for the appservice (for create-room --alias)",
                repeat: true,
            },
        ],
    },
    {
        name: "validate-config",
        summary:
            "Check the config (every problem at once) and, with -f, that it fits the registration. Exit 1 on\n" +
            "errors; unknown keys are warnings (exit 1 with --strict).",
        options: [CONFIG, REGISTRATION, { flags: ["--strict"], help: "warnings fail too" }],
    },
    {
        name: "create-room",
        summary: "Create an audit room as the sender and print its ID (for audit_room).",
        options: [
            CONFIG,
            REGISTRATION,
            { flags: ["--invite"], value: "USER_ID", help: "invite this auditor", repeat: true },
            {
                flags: ["--alias"],
                value: "#ALIAS:SERVER",
                help: "publish the room under this alias (reserve it with -r --alias)",
            },
        ],
    },
    {
        name: "invite",
        summary: "Invite auditors into the audit room (as the sender: only it may invite there).",
        positional: "USER_ID...",
        options: [CONFIG, REGISTRATION],
    },
    {
        name: "verify",
        summary:
            "Check the trail in the audit room (exit 0 intact, 1 broken or stale, 2 could not check). Admins give\n" +
            "-c and -f; auditors --homeserver, --access-token (or MATRIX_ACCESS_TOKEN) and --room; the JSONL export's\n" +
            "files --jsonl FILE... (last).",
        options: [
            CONFIG,
            REGISTRATION,
            { flags: ["--homeserver"], value: "URL", help: "auditors: the homeserver" },
            { flags: ["--access-token"], value: "TOKEN", help: "auditors: their own access token" },
            { flags: ["--room"], value: "ROOM", help: "auditors: the audit room's ID or alias" },
            { flags: ["--sender"], value: "USER_ID", help: "the sender (default: the first chained record's)" },
            { flags: ["--from"], value: "SEQ", help: "check from this seq on" },
            { flags: ["--max-age"], value: "SECONDS", help: "the newest record's greatest age (default 7200; 0: off)" },
            { flags: ["--state"], value: "FILE", help: "continue from the last run, and keep where this one stopped" },
            { flags: ["--json"], help: "the report as JSON" },
            {
                flags: ["--jsonl"],
                value: "FILE...",
                help: "check the JSONL export's files instead (rotated ones first)",
            },
        ],
    },
];

export function commandSpec(name: string): CommandSpec {
    const spec = COMMANDS.find((c) => c.name === name);
    if (!spec) throw new Error(`No command ${name}`);
    return spec;
}

/** Parsed options, keyed by the long flag without dashes ("config", "file", "invite"...). */
export interface ParsedArgs {
    values: Record<string, string | undefined>;
    lists: Record<string, string[]>;
    switches: Set<string>;
    positional: string[];
}

const keyOf = (option: OptionSpec): string => (option.flags.at(-1) as string).replace(/^-+/, "");

/** Parses `argv` (after the command word) against a command's table; a string is the error to show. */
export function parseArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs | string {
    const parsed: ParsedArgs = { values: {}, lists: {}, switches: new Set(), positional: [] };
    for (let i = 0; i < argv.length; i++) {
        const word = argv[i] as string;
        // --name=value is split, as most CLIs take it.
        const [flag, inline] = word.startsWith("--") && word.includes("=") ? word.split(/=(.*)/s) : [word, undefined];
        const option = [...spec.options, HELP].find((o) => o.flags.includes(flag as string));
        if (!option) {
            if (word.startsWith("-") && word !== "-") return `Unknown option ${word}`;
            if (!spec.positional) return `Unexpected argument ${word}`;
            parsed.positional.push(word);
            continue;
        }
        const key = keyOf(option);
        if (!option.value) {
            parsed.switches.add(key);
            continue;
        }
        const value = inline ?? argv[++i];
        if (value === undefined) return `Missing ${option.value} after ${flag}`;
        if (option.repeat) (parsed.lists[key] ??= []).push(value);
        else if (parsed.values[key] !== undefined) return `${flag} given twice`;
        else parsed.values[key] = value;
    }
    return parsed;
}

function optionLines(spec: CommandSpec): string[] {
    return [...spec.options, HELP].map((o) => {
        const left = `${o.flags.join(", ")}${o.value ? ` ${o.value}` : ""}${o.repeat ? " (repeatable)" : ""}`;
        return `      ${left.padEnd(36)} ${o.help}`;
    });
}

function usageLine(spec: CommandSpec): string {
    const words = [PROGRAM, spec.name, "[options]", spec.positional ?? ""].filter(Boolean);
    return `  ${words.join(" ")}`;
}

/** The help of one command, or of all of them. */
export function helpText(only?: CommandSpec): string {
    const specs = only ? [only] : COMMANDS;
    const lines = only ? [] : [`Usage: ${PROGRAM} [COMMAND] [options]   (Node.js >= ${MIN_NODE_MAJOR})`, ""];
    for (const spec of specs) {
        lines.push(usageLine(spec), ...spec.summary.split("\n").map((l) => `    ${l}`), ...optionLines(spec), "");
    }
    if (!only) lines.push(`${PROGRAM} COMMAND --help shows one command's help.`);
    return `${lines.join("\n")}\n`;
}

/** The error text of anything thrown by the bot SDK or Node, without dumping library objects. */
export function describeError(err: unknown): string {
    const e = err as { errcode?: unknown; error?: unknown; statusCode?: unknown; body?: unknown; message?: unknown };
    if (typeof e?.errcode === "string") {
        const status = typeof e.statusCode === "number" ? `${e.statusCode} ` : "";
        return `${status}${e.errcode}${typeof e.error === "string" ? `: ${e.error}` : ""}`;
    }
    // A non-2xx answer without a Matrix errcode comes as the raw IncomingMessage.
    if (typeof e?.statusCode === "number") return `HTTP ${e.statusCode} from the homeserver`;
    if (err instanceof Error) return err.message;
    return String(err);
}
