/**
 * The audit room's commands, run as the sender with the registration's as_token:
 *
 * - `create-room -c config.yaml -f registration.yaml [--invite USER]... [--alias #a:server]` creates an audit
 *   room that passes the safety checks (README, "Setting up the audit room"): the sender creates it, so it is
 *   the only member who may post, redact or change the room; auditors read at level 0; history `shared`, so an
 *   auditor invited later reads the whole trail; invite-only; not federated; unencrypted. Prints the room ID
 *   to put into `audit_room`.
 * - `invite -c config.yaml -f registration.yaml USER_ID...` invites auditors later: only the sender may invite
 *   into that room.
 */
import { readFile } from "node:fs/promises";
import { LogService, MatrixClient } from "@vector-im/matrix-bot-sdk";
import yaml from "js-yaml";
import { type CommandSpec, commandSpec, describeError, helpText, type ParsedArgs, parseArgs } from "../cli/Commands.js";
import { isAliasReserved, type RegistrationFile, registrationProblems } from "../cli/RegistrationChecks.js";
import { parseConfigYaml } from "../config/loadConfig.js";
import { isRoomAlias, isUserId, localpartOf } from "../matrix/Identifiers.js";
import { resolveRoom } from "./RoomReader.js";

/** Only the sender (100, or a room creator's unlimited power since room version 12) reaches these. */
const SENDER_ONLY = 100;

/**
 * Only the creator (the sender) may post, redact, change state or remove people; everyone else (auditors, at
 * users_default 0) reads. events_default above the auditors' level keeps a member from posting an
 * audit-looking message (which `verify` would then report as a look-alike on every run).
 */
export const SAFE_POWER_LEVELS = {
    redact: SENDER_ONLY,
    kick: SENDER_ONLY,
    ban: SENDER_ONLY,
    state_default: SENDER_ONLY,
    events_default: SENDER_ONLY,
    users_default: 0,
    invite: SENDER_ONLY,
};

/** The bot SDK logs every failed request with the whole error object; the commands say what failed themselves. */
function quietBotSdk(): void {
    const silent = (): void => undefined;
    LogService.setLogger({ info: silent, warn: silent, error: silent, debug: silent, trace: silent });
}

/** The appservice registers its sender on first start; these commands may run before that. */
async function registerSender(client: MatrixClient, sender: string): Promise<void> {
    try {
        await client.doRequest("POST", "/_matrix/client/v3/register", null, {
            type: "m.login.application_service",
            username: localpartOf(sender),
            inhibit_login: true,
        });
    } catch (err) {
        // Already registered (the appservice ran, or this command did): what we wanted.
        if ((err as { errcode?: string }).errcode !== "M_USER_IN_USE") throw err;
    }
}

interface SenderContext {
    client: MatrixClient;
    config: ReturnType<typeof parseConfigYaml>["config"];
    registration: RegistrationFile;
    configPath: string;
    registrationPath: string;
}

/** Parses the arguments, or writes the usage and returns an exit code. */
function parse(spec: CommandSpec, argv: string[]): ParsedArgs | number {
    const args = parseArgs(spec, argv);
    if (typeof args === "string" || args.values.config === undefined) {
        process.stderr.write(`${typeof args === "string" ? args : "Give the config with -c"}\n${helpText(spec)}`);
        return 2;
    }
    return args;
}

async function openAsSender(args: ParsedArgs, needsRoom: boolean): Promise<SenderContext> {
    quietBotSdk();
    const configPath = args.values.config as string;
    const registrationPath = args.values.file ?? "registration.yaml";
    // create-room makes audit_room: a placeholder lets the rest of the config be checked.
    const raw = yaml.load(await readFile(configPath, "utf8")) as Record<string, unknown>;
    const withRoom = needsRoom ? raw : { ...raw, audit_room: raw?.audit_room ?? "!placeholder" };
    const { config } = parseConfigYaml(yaml.dump(withRoom), configPath);
    const registration = yaml.load(await readFile(registrationPath, "utf8")) as RegistrationFile;
    const problems = registrationProblems(config, registration, registrationPath);
    if (problems.length > 0) throw new Error(problems.join("; "));
    const client = new MatrixClient(config.homeserver.url, registration.as_token as string);
    await registerSender(client, config.sender);
    client.impersonateUserId(config.sender);
    return { client, config, registration, configPath, registrationPath };
}

export async function runCreateRoom(argv: string[]): Promise<number> {
    const spec = commandSpec("create-room");
    const args = parse(spec, argv);
    if (typeof args === "number") return args;
    const invite = args.lists.invite ?? [];
    const alias = args.values.alias;
    const bad = [...invite.filter((u) => !isUserId(u)), ...(alias && !isRoomAlias(alias) ? [alias] : [])];
    if (bad.length > 0) {
        process.stderr.write(`Not a user ID or room alias: ${bad.join(", ")}\n${helpText(spec)}`);
        return 2;
    }
    try {
        const { client, registration, configPath, registrationPath } = await openAsSender(args, false);
        if (alias && !isAliasReserved(registration, alias)) {
            throw new Error(
                `${registrationPath} does not reserve ${alias}, and the homeserver lets an appservice create only ` +
                    `aliases in its namespace (M_EXCLUSIVE). Write the registration with -r --alias '${alias}' (or ` +
                    "add it under namespaces.aliases), restart the homeserver, and run this again.",
            );
        }
        const roomId = await client.createRoom({
            preset: "private_chat",
            name: "Account data audit",
            topic: "The audit trail of account-data changes, posted by matrix-account-data-audit. Do not redact.",
            invite,
            creation_content: { "m.federate": false },
            initial_state: [
                { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "shared" } },
            ],
            // No `users`: the creator gets full power by itself (listed at 100 before room version 12, above
            // every level since, when it must not be listed).
            power_level_content_override: SAFE_POWER_LEVELS,
            ...(alias ? { room_alias_name: localpartOf(alias.replace(/^#/, "@")) } : {}),
        });
        process.stdout.write(`${roomId}\n`);
        process.stderr.write(
            `Created ${roomId}${alias ? ` (${alias})` : ""}: set audit_room to it in ${configPath}.\n` +
                "Members read the whole trail, also those invited later (history visibility shared); only the " +
                "sender may post, redact or change the room, auditors read.\n" +
                "To add an auditor later (only the sender may invite):\n" +
                `  matrix-account-data-audit invite -c ${configPath} -f ${registrationPath} @auditor:server\n`,
        );
        return 0;
    } catch (err) {
        process.stderr.write(`create-room: ${describeError(err)}\n`);
        return 1;
    }
}

export async function runInvite(argv: string[]): Promise<number> {
    const spec = commandSpec("invite");
    const args = parse(spec, argv);
    if (typeof args === "number") return args;
    const bad = args.positional.filter((u) => !isUserId(u));
    if (args.positional.length === 0 || bad.length > 0) {
        process.stderr.write(
            `${bad.length > 0 ? `Not a user ID: ${bad.join(", ")}` : "Give a user ID"}\n${helpText(spec)}`,
        );
        return 2;
    }
    try {
        const { client, config } = await openAsSender(args, true);
        const roomId = await resolveRoom(client, config.audit_room);
        for (const user of args.positional) {
            await client.inviteUser(user, roomId);
            process.stderr.write(`Invited ${user} into ${roomId}: once joined, they read the whole trail.\n`);
        }
        return 0;
    } catch (err) {
        process.stderr.write(`invite: ${describeError(err)}\n`);
        return 1;
    }
}
