/**
 * Imports the built package as an admin's install would load it: this fails if `npm ci` left the bot SDK's
 * crypto dependency broken (its real package needs a native download from GitHub).
 */
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

// It imports the whole build and spawns the CLI: seconds on a loaded 2-core machine, past the default 5 s.
describe("the built package", { timeout: 30_000 }, () => {
    it("imports without the native crypto library and exports the public API", async () => {
        const builtEntry = "../../lib/index.js"; // a variable: this must load the build output, not the sources
        const pkg = (await import(builtEntry)) as Record<string, unknown>;
        for (const name of [
            "start",
            "ConfigError",
            "AuditModule",
            "parseConfig",
            "pythonJsonDumps",
            "EventTooLargeError",
        ]) {
            expect(pkg[name], name).toBeDefined();
        }
    });

    it("uses the in-repo crypto stand-in, which fails loudly only if encryption is used", () => {
        const require = createRequire(import.meta.url);
        const crypto = require("@matrix-org/matrix-sdk-crypto-nodejs") as { OlmMachine: { initialize(): unknown } };
        expect(() => crypto.OlmMachine.initialize()).toThrow(/End-to-end encryption is not supported/);
    });

    it("its CLI validates a config file and exits non-zero on errors", () => {
        const run = (file: string, more: string[] = []) =>
            spawnSync(process.execPath, ["lib/main.js", "validate-config", "-c", file, ...more], { encoding: "utf8" });
        const sample = run("config.sample.yaml", ["-f", "registration.yaml.example"]);
        expect(sample.status).toBe(0);
        expect(sample.stdout).toBe("config.sample.yaml is valid.\n");
        expect(sample.stderr).toBe(""); // no deprecation warnings from dependencies

        const missing = run("test/unit/fixtures/missing-sender.yaml", ["-f", "registration.yaml.example"]);
        expect(missing.status).toBe(1);
        expect(missing.stderr).toContain("Config error: 'sender' is required");

        const many = run("test/unit/fixtures/many-problems.yaml", ["-f", "registration.yaml.example"]);
        expect(many.status).toBe(1);
        expect(many.stderr).toBe(
            [
                "Config error: 'audit_room' must be a room ID (!…) or a room alias (#…:server), got \"audit\"",
                "Config error: 'sender' is required",
                "Config error: 'homeserver.url' must be an http:// or https:// URL, got \"localhost:8008\"",
                "Config error: 'listen.port' must be an integer, got string \"eighty\"",
                "Config error: 'sending.max_in_flight' must be between 1 and 10, got 50",
                "Warning: unknown config key 'homeserver.prot' is ignored",
                "test/unit/fixtures/many-problems.yaml is NOT valid: 5 error(s), 1 warning(s).",
                "",
            ].join("\n"),
        );

        const unknown = run("test/unit/fixtures/unknown-key.yaml");
        expect(unknown.status).toBe(0);
        expect(unknown.stderr).toContain("Warning: unknown config key 'homeserver.prot' is ignored");
    });
});
