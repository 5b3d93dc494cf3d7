/**
 * create-room and invite against a fake homeserver: the exact requests they make as the sender (registration
 * first, then createRoom with the safe power levels, shared history, no federation and the alias; or the
 * invites), what they print, and their exit codes on usage errors, registration mismatches and refusals.
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import yaml from "js-yaml";
import { LogService } from "@vector-im/matrix-bot-sdk";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { helpText, commandSpec } from "../../src/cli/Commands.js";
import { runCreateRoom, runInvite, SAFE_POWER_LEVELS } from "../../src/verify/CreateRoomCommand.js";
import { FakeHomeserver } from "./fakeHomeserver.js";
import { captureOutput } from "./captureOutput.js";

const SENDER = "@audit:example.org";
const AS = `user_id=${encodeURIComponent(SENDER)}`;
const REGISTER = {
    method: "POST",
    url: "/_matrix/client/v3/register",
    body: { type: "m.login.application_service", username: "audit", inhibit_login: true },
};

const ROOM_BODY = {
    preset: "private_chat",
    name: "Account data audit",
    topic: "The audit trail of account-data changes, posted by matrix-account-data-audit. Do not redact.",
    creation_content: { "m.federate": false },
    initial_state: [{ type: "m.room.history_visibility", state_key: "", content: { history_visibility: "shared" } }],
    power_level_content_override: {
        redact: 100,
        kick: 100,
        ban: 100,
        state_default: 100,
        events_default: 100,
        users_default: 0,
        invite: 100,
    },
};

describe("create-room and invite, as the sender", () => {
    let hs: FakeHomeserver;
    let dir: string;
    let configPath: string;
    let regPath: string;
    let out: string[];
    let err: string[];

    const write = async (name: string, value: unknown) => {
        const path = join(dir, name);
        await writeFile(path, yaml.dump(value));
        return path;
    };
    const config = (extra: Record<string, unknown> = {}) => ({
        sender: SENDER,
        homeserver: { url: hs.url, server_name: "example.org" },
        ...extra,
    });
    const registration = {
        id: "audit",
        url: "http://localhost:9993",
        as_token: "the-as-token",
        hs_token: "h",
        sender_localpart: "audit",
        namespaces: {
            users: [{ regex: "@audit:example\\.org", exclusive: true }],
            aliases: [{ regex: "#audit\\.room:example\\.org$", exclusive: true }],
            rooms: [],
        },
    };
    const paths = () => hs.requests.map((r) => `${r.method} ${r.url}`);

    beforeAll(async () => {
        dir = await mkdtemp(join(tmpdir(), "create-room-"));
    });

    beforeEach(async () => {
        hs = new FakeHomeserver();
        await hs.start();
        configPath = await write("config.yaml", config());
        regPath = await write("registration.yaml", registration);
        ({ out, err } = captureOutput());
    });

    afterEach(async () => {
        vi.restoreAllMocks();
        await hs.stop();
    });

    it("keeps everyone but the sender at reading", () => {
        expect(SAFE_POWER_LEVELS).toEqual(ROOM_BODY.power_level_content_override);
    });

    it("registers the sender, then creates the room with the safe settings and the invites, as the sender", async () => {
        hs.script({ status: 200, body: { user_id: SENDER } }, { status: 200, body: { room_id: "!new:example.org" } });
        const code = await runCreateRoom(["-c", configPath, "-f", regPath, "--invite", "@a:x", "--invite", "@b:y"]);
        expect(code).toBe(0);
        expect(hs.requests).toEqual([
            REGISTER,
            {
                method: "POST",
                url: `/_matrix/client/v3/createRoom?${AS}`,
                body: { ...ROOM_BODY, invite: ["@a:x", "@b:y"] },
            },
        ]);
        expect(out.join("")).toBe("!new:example.org\n");
        expect(err.join("")).toBe(
            `Created !new:example.org: set audit_room to it in ${configPath}.\n` +
                "Members read the whole trail, also those invited later (history visibility shared); only the " +
                "sender may post, redact or change the room, auditors read.\n" +
                "To add an auditor later (only the sender may invite):\n" +
                `  matrix-account-data-audit invite -c ${configPath} -f ${regPath} @auditor:server\n`,
        );
    });

    it("publishes a reserved alias by its localpart, and names it; goes on when the sender is already registered", async () => {
        hs.script(
            { status: 400, body: { errcode: "M_USER_IN_USE", error: "taken" } },
            { status: 200, body: { room_id: "!new:example.org" } },
        );
        const code = await runCreateRoom(["-c", configPath, "-f", regPath, "--alias", "#audit.room:example.org"]);
        expect(code).toBe(0);
        expect(hs.requests).toEqual([
            REGISTER,
            {
                method: "POST",
                url: `/_matrix/client/v3/createRoom?${AS}`,
                body: { ...ROOM_BODY, invite: [], room_alias_name: "audit.room" },
            },
        ]);
        expect(out.join("")).toBe("!new:example.org\n");
        expect(err.join("")).toMatch(
            new RegExp(`^Created !new:example\\.org \\(#audit\\.room:example\\.org\\): set audit_room to it in `),
        );
    });

    it("refuses an alias the registration does not reserve, before creating anything", async () => {
        const code = await runCreateRoom(["-c", configPath, "-f", regPath, "--alias", "#other:example.org"]);
        expect(code).toBe(1);
        expect(paths()).toEqual(["POST /_matrix/client/v3/register"]);
        expect(out).toEqual([]);
        expect(err.join("")).toBe(
            `create-room: ${regPath} does not reserve #other:example.org, and the homeserver lets an appservice ` +
                "create only aliases in its namespace (M_EXCLUSIVE). Write the registration with -r --alias " +
                "'#other:example.org' (or add it under namespaces.aliases), restart the homeserver, and run this again.\n",
        );
    });

    it("fails on any other registration error, and on a refused createRoom, with the homeserver's words", async () => {
        hs.script({ status: 403, body: { errcode: "M_FORBIDDEN", error: "no appservice" } });
        expect(await runCreateRoom(["-c", configPath, "-f", regPath])).toBe(1);
        expect(paths()).toEqual(["POST /_matrix/client/v3/register"]);
        expect(err.join("")).toBe("create-room: 403 M_FORBIDDEN: no appservice\n");

        err.length = 0;
        hs.script({ status: 200, body: {} }, { status: 400, body: { errcode: "M_ROOM_IN_USE", error: "alias taken" } });
        expect(await runCreateRoom(["-c", configPath, "-f", regPath])).toBe(1);
        expect(err.join("")).toBe("create-room: 400 M_ROOM_IN_USE: alias taken\n");
        expect(out).toEqual([]);
    });

    it("checks the config against the registration first, and asks the homeserver nothing when they differ", async () => {
        const other = await write("other.yaml", config({ sender: "@someone:example.org" }));
        expect(await runCreateRoom(["-c", other, "-f", regPath])).toBe(1);
        expect(hs.requests).toEqual([]);
        expect(err.join("")).toBe(
            "create-room: 'sender' @someone:example.org is neither the registration's sender_localpart (audit) " +
                `nor inside its users namespace (${regPath}): the homeserver would refuse every post\n`,
        );
    });

    it("keeps the bot SDK's own logging quiet: the command says what failed itself", async () => {
        const logged: unknown[][] = [];
        const record = (...args: unknown[]): void => void logged.push(args);
        LogService.setLogger({ info: record, warn: record, error: record, debug: record, trace: record });
        hs.script({ status: 200, body: {} }, { status: 500, body: { errcode: "M_UNKNOWN", error: "down" } });
        expect(await runCreateRoom(["-c", configPath, "-f", regPath])).toBe(1);
        expect(err.join("")).toBe("create-room: 500 M_UNKNOWN: down\n");
        expect(logged).toEqual([]);
    });

    it("names every mismatch between config and registration, and an empty config's missing keys", async () => {
        const other = await write("both.yaml", config({ sender: "@someone:example.com" }));
        expect(await runCreateRoom(["-c", other, "-f", regPath])).toBe(1);
        expect(err.join("")).toBe(
            "create-room: 'sender' @someone:example.com is not on 'homeserver.server_name' example.org: the sender " +
                "must be a user of the homeserver the appservice is registered with; 'sender' @someone:example.com " +
                "is neither the registration's sender_localpart (audit) nor inside its users namespace " +
                `(${regPath}): the homeserver would refuse every post\n`,
        );
        err.length = 0;
        const empty = join(dir, "empty.yaml");
        await writeFile(empty, "");
        expect(await runCreateRoom(["-c", empty, "-f", regPath])).toBe(1);
        // audit_room is not asked for: create-room makes it.
        expect(err.join("")).toBe(
            "create-room: 'sender' is required\n'homeserver.url' is required\n'homeserver.server_name' is required\n",
        );
        expect(hs.requests).toEqual([]);
    });

    it("exits 2 on usage errors: no config, a bad invitee or alias", async () => {
        const usage = helpText(commandSpec("create-room"));
        expect(await runCreateRoom([])).toBe(2);
        expect(err.join("")).toBe(`Give the config with -c\n${usage}`);
        err.length = 0;
        expect(await runCreateRoom(["-c", configPath, "--bogus"])).toBe(2);
        expect(err.join("")).toBe(`Unknown option --bogus\n${usage}`);
        err.length = 0;
        expect(await runCreateRoom(["-c", configPath, "--invite", "@a:x", "--invite", "bob", "--alias", "room"])).toBe(
            2,
        );
        expect(err.join("")).toBe(`Not a user ID or room alias: bob, room\n${usage}`);
        err.length = 0;
        const valid = ["-c", configPath, "-f", regPath, "--alias", "#ok:example.org", "--invite", "@a:x"];
        expect(await runCreateRoom(valid)).toBe(1);
        expect(paths()).toEqual(["POST /_matrix/client/v3/register"]);
    });

    it("reads registration.yaml from the working directory without -f", async () => {
        expect(await runCreateRoom(["-c", configPath])).toBe(1);
        expect(err.join("")).toBe("create-room: ENOENT: no such file or directory, open 'registration.yaml'\n");
        expect(hs.requests).toEqual([]);
    });

    it("invites each user into the configured room, resolving an alias first", async () => {
        const withAlias = await write("alias.yaml", config({ audit_room: "#audit.room:example.org" }));
        hs.script(
            { status: 200, body: {} },
            { status: 200, body: { room_id: "!r:example.org" } },
            { status: 200, body: {} },
            { status: 200, body: {} },
        );
        expect(await runInvite(["-c", withAlias, "-f", regPath, "@a:x", "@b:y"])).toBe(0);
        expect(hs.requests).toEqual([
            REGISTER,
            {
                method: "GET",
                url: `/_matrix/client/v3/directory/room/${encodeURIComponent("#audit.room:example.org")}?${AS}`,
                body: null,
            },
            {
                method: "POST",
                url: `/_matrix/client/v3/rooms/${encodeURIComponent("!r:example.org")}/invite?${AS}`,
                body: { user_id: "@a:x" },
            },
            {
                method: "POST",
                url: `/_matrix/client/v3/rooms/${encodeURIComponent("!r:example.org")}/invite?${AS}`,
                body: { user_id: "@b:y" },
            },
        ]);
        expect(err.join("")).toBe(
            "Invited @a:x into !r:example.org: once joined, they read the whole trail.\n" +
                "Invited @b:y into !r:example.org: once joined, they read the whole trail.\n",
        );
    });

    it("needs audit_room for invite, stops at the first refused invite, and exits 2 on usage errors", async () => {
        expect(await runInvite(["-c", configPath, "-f", regPath, "@a:x"])).toBe(1);
        expect(hs.requests).toEqual([]);
        expect(err.join("")).toMatch(/^invite: .*audit_room/);

        err.length = 0;
        const withRoom = await write("room.yaml", config({ audit_room: "!r:example.org" }));
        hs.script({ status: 200, body: {} }, { status: 403, body: { errcode: "M_FORBIDDEN", error: "not allowed" } });
        expect(await runInvite(["-c", withRoom, "-f", regPath, "@a:x", "@b:y"])).toBe(1);
        expect(paths()).toEqual([
            "POST /_matrix/client/v3/register",
            `POST /_matrix/client/v3/rooms/${encodeURIComponent("!r:example.org")}/invite?${AS}`,
        ]);
        expect(err.join("")).toBe("invite: 403 M_FORBIDDEN: not allowed\n");

        const usage = helpText(commandSpec("invite"));
        err.length = 0;
        expect(await runInvite(["-c", withRoom])).toBe(2);
        expect(err.join("")).toBe(`Give a user ID\n${usage}`);
        err.length = 0;
        expect(await runInvite(["-c", withRoom, "@a:x", "bob", "eve"])).toBe(2);
        expect(err.join("")).toBe(`Not a user ID: bob, eve\n${usage}`);
        err.length = 0;
        expect(await runInvite(["@a:x"])).toBe(2);
        expect(err.join("")).toBe(`Give the config with -c\n${usage}`);
        expect(hs.requests).toHaveLength(2);
    });
});
