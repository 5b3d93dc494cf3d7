import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/Config.js";
import { parseConfigYaml } from "../../src/config/loadConfig.js";
import { renderConfigSample } from "../../src/config/Sample.js";
import { ConfigError, InvalidConfigError } from "../../src/Errors.js";
import { AuditModule } from "../../src/modules/AuditModule.js";

const MINIMAL = {
    audit_room: "!audit:example.org",
    sender: "@audit:example.org",
    homeserver: { url: "http://localhost:8008", server_name: "example.org" },
};

function errorOf(raw: unknown): ConfigError {
    try {
        parseConfig(raw);
    } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return err as ConfigError;
    }
    throw new Error("expected a ConfigError");
}

describe("parseConfig", () => {
    it("fills in defaults", () => {
        const { config, unknownKeys } = parseConfig(MINIMAL);
        expect(config.listen).toEqual({ bind_address: "127.0.0.1", port: 9993 });
        expect(config.ingest.token).toBeNull();
        expect(config.ingest.max_body_bytes).toBe(64 * 1024 * 1024);
        expect(config.logging.level).toBe("info");
        expect(unknownKeys).toEqual([]);
    });

    it.each(["audit_room", "sender"])("says '%s' is required in the seed's words", (key) => {
        const raw: Record<string, unknown> = { ...MINIMAL };
        delete raw[key];
        const err = errorOf(raw);
        expect(err.message).toBe(`'${key}' is required`);
        expect(err.path).toBe(key);
    });

    it("treats an empty value as missing", () => {
        expect(errorOf({ ...MINIMAL, audit_room: null }).message).toBe("'audit_room' is required");
    });

    it.each([
        [{ audit_room: "audit" }, "audit_room", "'audit_room' must be a room ID (!…) or a room alias (#…:server)"],
        [{ audit_room: 5 }, "audit_room", "'audit_room' must be a string, got number 5"],
        [{ sender: "audit" }, "sender", "'sender' must be a user ID such as @audit:example.org"],
        [{ homeserver: { server_name: "example.org" } }, "homeserver.url", "'homeserver.url' is required"],
        [
            { homeserver: { url: "localhost", server_name: "example.org" } },
            "homeserver.url",
            "must be an http:// or https:// URL",
        ],
        [
            { homeserver: { url: "http://x", server_name: "bad name" } },
            "homeserver.server_name",
            "must be a server name",
        ],
        [{ listen: { port: 0 } }, "listen.port", "'listen.port' must be between 1 and 65535, got 0"],
        [{ listen: { port: "80" } }, "listen.port", "'listen.port' must be an integer"],
        [{ listen: [] }, "listen", "'listen' must be a mapping, got a list"],
        [{ ingest: { token: 7 } }, "ingest.token", "'ingest.token' must be a string or null"],
        [
            { logging: { level: "loud" } },
            "logging.level",
            "'logging.level' must be one of error, warn, info, debug, trace",
        ],
        [{ logging: { json: "yes" } }, "logging.json", "'logging.json' must be true or false"],
        [{ sending: { retry_initial_ms: 500, retry_max_ms: 100 } }, "sending.retry_max_ms", "must not be smaller"],
    ])("names the key path of a wrong value: %j", (override, path, message) => {
        const err = errorOf({ ...MINIMAL, ...override });
        expect(err.path).toBe(path);
        expect(err.message).toContain(message);
    });

    it("reports every problem at once, each with its key path, and the unknown keys", () => {
        const err = errorOf({ audit_room: 5, homeserver: { url: "x" }, listen: { port: "eighty" }, extra: 1 });
        expect(err).toBeInstanceOf(InvalidConfigError);
        const { problems, unknownKeys } = err as InvalidConfigError;
        expect(problems.map((p) => p.path)).toEqual([
            "audit_room",
            "sender",
            "homeserver.url",
            "homeserver.server_name",
            "listen.port",
        ]);
        expect(err.message.split("\n")).toEqual(problems.map((p) => p.message));
        expect(unknownKeys).toEqual(["extra"]);
    });

    it("reads the audit policy and names the path of every wrong rule field", () => {
        const { config } = parseConfig({
            ...MINIMAL,
            audit: { rules: [{ types: ["m.fully_read"], rooms: ["global", "!*"], level: "none" }], secrets: "post" },
        });
        expect(config.audit).toEqual({
            rules: [{ types: ["m.fully_read"], users: null, rooms: ["global", "!*"], level: "none" }],
            secrets: "post",
        });
        const err = errorOf({
            ...MINIMAL,
            audit: {
                rules: [
                    { types: "m.fully_read", level: "none" },
                    { types: ["x"], level: "hidden", typo: 1 },
                    { level: "full" },
                ],
                secrets: "show",
            },
        }) as InvalidConfigError;
        expect(err.problems.map((p) => p.message)).toEqual([
            "'audit.rules[0].types' must be a list of strings, got string \"m.fully_read\"",
            "'audit.rules[1].level' must be one of none, metadata, full, got string \"hidden\"",
            "'audit.rules[1].typo' is not a known key",
            "'audit.rules[2].types' is required",
            "'audit.secrets' must be one of withhold, post, got string \"show\"",
        ]);
    });

    it("reports unknown keys with their paths", () => {
        const { unknownKeys } = parseConfig({ ...MINIMAL, extra: 1, listen: { prot: 1 } });
        expect(unknownKeys.sort()).toEqual(["extra", "listen.prot"]);
    });

    it("rejects an empty file and bad YAML", () => {
        expect(() => parseConfigYaml("", "c.yaml")).toThrow("The config file is empty");
        expect(() => parseConfigYaml("a: [", "c.yaml")).toThrow(/c.yaml is not valid YAML/);
        expect(() => parseConfigYaml("just a string", "c.yaml")).toThrow("The config must be a mapping");
    });

    it("AuditModule.parseConfig checks only its own keys, in the seed's words", () => {
        expect(AuditModule.parseConfig({ audit_room: "#a:example.org", sender: "@s:example.org", other: 1 })).toEqual({
            audit_room: "#a:example.org",
            sender: "@s:example.org",
            audit: { rules: [], secrets: "withhold" },
        });
        expect(() => AuditModule.parseConfig({ sender: "@s:example.org" })).toThrow("'audit_room' is required");
        expect(() => AuditModule.parseConfig({ audit_room: "!a:example.org" })).toThrow("'sender' is required");
    });

    it("the generated sample parses and documents every key", () => {
        const sample = renderConfigSample();
        const { config, unknownKeys } = parseConfigYaml(sample, "config.sample.yaml");
        expect(unknownKeys).toEqual([]);
        expect(config.audit_room).toBe("#account-data-audit:example.org");
        expect(sample).toContain("# Default: 9993");
        expect(sample).toContain("# Required.");
    });
});
