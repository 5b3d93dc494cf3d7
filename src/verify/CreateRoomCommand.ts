/**
 * `matrix-account-data-audit create-room -c config.yaml -f registration.yaml [--invite USER]... [--alias #a:server]`:
 * creates an audit room that passes the safety checks (README, "Setting up the audit room"): the sender creates
 * it, so the sender is the only member who may redact its events (or change the room); invite-only; history
 * for members; not federated; unencrypted. Prints the room ID to put into `audit_room`.
 */
import { readFile } from "node:fs/promises";
import { MatrixClient } from "@vector-im/matrix-bot-sdk";
import yaml from "js-yaml";
import { parseConfigYaml } from "../config/loadConfig.js";
import { isRoomAlias, isUserId, localpartOf } from "../matrix/Identifiers.js";

export const CREATE_ROOM_USAGE =
    "Usage: matrix-account-data-audit create-room -c CONFIG_FILE -f REGISTRATION_FILE [--invite USER_ID]... " +
    "[--alias #ALIAS:SERVER]\n";

/** Power levels in which only the creator (the sender) may redact, change state or remove people. */
export const SAFE_POWER_LEVELS = {
    redact: 100,
    kick: 100,
    ban: 100,
    state_default: 100,
    events_default: 0,
    users_default: 0,
    invite: 100,
};

/** The appservice registers its sender on first start; this command may run before that. */
async function registerSender(client: MatrixClient, sender: string): Promise<void> {
    try {
        await client.doRequest("POST", "/_matrix/client/v3/register", null, {
            type: "m.login.application_service",
            username: localpartOf(sender),
            inhibit_login: true,
        });
    } catch (err) {
        if ((err as { errcode?: string }).errcode !== "M_USER_IN_USE") throw err;
    }
}

export async function runCreateRoom(argv: string[]): Promise<number> {
    const invite: string[] = [];
    let configPath: string | undefined;
    let registrationPath: string | undefined;
    let alias: string | undefined;
    for (let i = 0; i < argv.length; i += 2) {
        const [arg, value] = [argv[i], argv[i + 1]];
        if (value === undefined) break;
        if (arg === "-c") configPath = value;
        else if (arg === "-f") registrationPath = value;
        else if (arg === "--invite" && isUserId(value)) invite.push(value);
        else if (arg === "--alias" && isRoomAlias(value)) alias = value;
        else {
            process.stderr.write(`Unknown or invalid argument: ${arg} ${value}\n${CREATE_ROOM_USAGE}`);
            return 2;
        }
    }
    if (!configPath || !registrationPath || argv.length % 2 !== 0) {
        process.stderr.write(CREATE_ROOM_USAGE);
        return 2;
    }
    try {
        // audit_room is what this command makes: a placeholder lets the rest of the config be checked.
        const raw = yaml.load(await readFile(configPath, "utf8")) as Record<string, unknown>;
        const { config } = parseConfigYaml(
            yaml.dump({ ...raw, audit_room: raw.audit_room ?? "!placeholder" }),
            configPath,
        );
        const registration = yaml.load(await readFile(registrationPath, "utf8")) as { as_token?: unknown };
        if (typeof registration?.as_token !== "string") throw new Error(`${registrationPath} has no as_token`);
        const client = new MatrixClient(config.homeserver.url, registration.as_token);
        await registerSender(client, config.sender);
        client.impersonateUserId(config.sender);
        const roomId = await client.createRoom({
            preset: "private_chat",
            name: "Account data audit",
            topic: "The audit trail of account-data changes, posted by matrix-account-data-audit. Do not redact.",
            invite,
            creation_content: { "m.federate": false },
            initial_state: [
                { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } },
            ],
            // No `users`: the creator gets full power by itself (listed at 100 before room version 12, above
            // every level since, when it must not be listed).
            power_level_content_override: SAFE_POWER_LEVELS,
            ...(alias ? { room_alias_name: localpartOf(alias.replace(/^#/, "@")) } : {}),
        });
        process.stdout.write(`${roomId}\n`);
        process.stderr.write(
            `Created ${roomId}${alias ? ` (${alias})` : ""}: set audit_room to it in ${configPath}.\n`,
        );
        return 0;
    } catch (err) {
        process.stderr.write(`create-room: ${(err as Error).message}\n`);
        return 1;
    }
}
