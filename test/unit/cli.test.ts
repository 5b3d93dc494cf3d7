/**
 * The command line: one table drives the parser and --help (so help lists every command and option the parser
 * takes), `-r --alias` reserves the alias create-room publishes, and validate-config checks the config against
 * the registration and counts its warnings.
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import yaml from "js-yaml";
import { AppServiceRegistration } from "matrix-appservice-bridge";
import { beforeAll, describe, expect, it } from "vitest";
import { COMMANDS, commandSpec, describeError, helpText, parseArgs } from "../../src/cli/Commands.js";
import { isAliasReserved, registrationProblems } from "../../src/cli/RegistrationChecks.js";
import { runValidateConfig } from "../../src/cli/ValidateConfig.js";
import { completeRegistration } from "../../src/Registration.js";
import { parseVerifyArgs } from "../../src/verify/VerifyCommand.js";

describe("the command table", () => {
    it("--help lists every command with each of its options", () => {
        const help = helpText();
        for (const name of ["-r", "validate-config", "create-room", "invite", "verify"]) {
            expect(help).toContain(`matrix-account-data-audit ${name} [options]`);
        }
        for (const spec of COMMANDS) {
            const own = helpText(spec);
            for (const option of spec.options) expect(own).toContain(option.flags.join(", "));
        }
        expect(helpText(commandSpec("create-room"))).toMatch(/--invite USER_ID \(repeatable\)/);
    });

    it("takes -c/-f and their long forms alike in every command, and refuses what it does not know", () => {
        for (const spec of COMMANDS.filter((c) => c.name !== "-r")) {
            for (const argv of [
                ["-c", "a.yaml", "-f", "r.yaml"],
                ["--config", "a.yaml", "--file=r.yaml"],
            ]) {
                const args = parseArgs(spec, argv);
                expect(args, spec.name).toMatchObject({ values: { config: "a.yaml", file: "r.yaml" } });
            }
        }
        const spec = commandSpec("create-room");
        expect(parseArgs(spec, ["-c", "a", "--inivte", "@a:b"])).toBe("Unknown option --inivte");
        expect(parseArgs(spec, ["-c"])).toBe("Missing FILE after -c");
        expect(parseArgs(spec, ["-c", "a", "-c", "b"])).toBe("-c given twice");
        expect(parseArgs(spec, ["-c", "a", "stray"])).toBe("Unexpected argument stray");
        expect(parseArgs(spec, ["--invite", "@a:x", "--invite", "@b:x"])).toMatchObject({
            lists: { invite: ["@a:x", "@b:x"] },
        });
        expect(parseArgs(commandSpec("invite"), ["-c", "a", "@a:x", "@b:x"])).toMatchObject({
            positional: ["@a:x", "@b:x"],
        });
    });

    it("lists exactly the options verify's own parser takes", () => {
        for (const option of commandSpec("verify").options) {
            const flag = option.flags.at(-1) as string;
            const argv = option.value
                ? [flag, option.value === "SEQ" || option.value === "SECONDS" ? "1" : "x"]
                : [flag];
            const parsed = parseVerifyArgs([...argv, "--homeserver", "h", "--access-token", "t", "--room", "!r"], {});
            // Admin and auditor options together are refused for that reason, never as unknown.
            if (typeof parsed === "string") expect(parsed, flag).not.toMatch(/Unknown|Missing/);
        }
    });

    it("takes --jsonl with its files, alone", () => {
        expect(parseVerifyArgs(["--json", "--jsonl", "a.jsonl.000000000009", "a.jsonl"], {})).toMatchObject({
            json: true,
            jsonl: ["a.jsonl.000000000009", "a.jsonl"],
        });
        expect(parseVerifyArgs(["--jsonl", "a", "--max-age", "0"], {})).toMatchObject({
            jsonl: ["a"],
            maxAgeSeconds: 0,
        });
        expect(parseVerifyArgs(["--jsonl"], {})).toMatch(/Give the export's files/);
        expect(parseVerifyArgs(["--jsonl", "a", "--room", "!r"], {})).toMatch(/give no room/);
    });

    it("shows a library error by what it says, never as an object", () => {
        expect(describeError({ errcode: "M_EXCLUSIVE", error: "reserved", statusCode: 400, body: {} })).toBe(
            "400 M_EXCLUSIVE: reserved",
        );
        expect(describeError({ statusCode: 502, headers: {} })).toBe("HTTP 502 from the homeserver");
        expect(describeError(new Error("boom"))).toBe("boom");
    });
});

describe("the registration", () => {
    it("-r --alias reserves exactly that alias, exclusively", () => {
        const reg = completeRegistration(new AppServiceRegistration("http://x"), "audit", ["#audit.room:example.org"]);
        const file = yaml.load(yaml.dump(reg.getOutput())) as Parameters<typeof isAliasReserved>[0];
        expect(file.namespaces?.aliases).toEqual([{ regex: "#audit\\.room:example\\.org$", exclusive: true }]);
        expect(isAliasReserved(file, "#audit.room:example.org")).toBe(true);
        expect(isAliasReserved(file, "#auditXroom:example.org")).toBe(false);
        expect(isAliasReserved(file, "#audit.room:example.org.evil")).toBe(false);
        expect(isAliasReserved(file, "#x#audit.room:example.org")).toBe(false);
        const without = yaml.load(yaml.dump(completeRegistration(new AppServiceRegistration("http://x")).getOutput()));
        expect(isAliasReserved(without as object, "#audit.room:example.org")).toBe(false);
    });

    it("names a sender outside the namespace and a server_name that is not the sender's", () => {
        const registration = {
            as_token: "t",
            sender_localpart: "audit",
            namespaces: { users: [{ regex: "@audit_.*" }] },
        };
        const check = (sender: string, serverName = "example.org") =>
            registrationProblems({ sender, homeserver: { server_name: serverName } }, registration, "reg.yaml");
        expect(check("@audit:example.org")).toEqual([]);
        expect(check("@audit_two:example.org")).toEqual([]);
        expect(check("@other:example.org")).toEqual([
            "'sender' @other:example.org is neither the registration's sender_localpart (audit) nor inside its " +
                "users namespace (reg.yaml): the homeserver would refuse every post",
        ]);
        expect(check("@audit:example.org", "example.com")).toEqual([
            "'sender' @audit:example.org is not on 'homeserver.server_name' example.com: the sender must be a user " +
                "of the homeserver the appservice is registered with",
        ]);
        // Synapse anchors namespaces at the start only: "@audit_.*" does not match "@x@audit_y".
        expect(check("@x@audit_y:example.org")).toHaveLength(1);
    });
});

describe("validate-config", () => {
    let dir: string;
    const config = {
        audit_room: "!audit:example.org",
        sender: "@account-data-audit:example.org",
        homeserver: { url: "http://localhost:8008", server_name: "example.org" },
    };
    const write = async (name: string, value: unknown) => {
        const path = join(dir, name);
        await writeFile(path, yaml.dump(value));
        return path;
    };
    const run = async (argv: string[]) => {
        const out: string[] = [];
        const err: string[] = [];
        const code = await runValidateConfig(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
        return { code, stdout: out.join(""), stderr: err.join("") };
    };

    beforeAll(async () => {
        dir = await mkdtemp(join(tmpdir(), "validate-config-"));
        const reg = completeRegistration(new AppServiceRegistration("http://localhost:9993"));
        reg.outputAsYaml(join(dir, "registration.yaml"));
    });

    it("says valid for a config that fits its registration", async () => {
        const path = await write("good.yaml", config);
        const result = await run(["-c", path, "-f", join(dir, "registration.yaml")]);
        expect(result).toEqual({ code: 0, stdout: `${path} is valid.\n`, stderr: "" });
    });

    it("fails on a sender outside the registration's namespace and a server_name that does not match", async () => {
        const path = await write("mismatch.yaml", {
            ...config,
            sender: "@someone:example.org",
            homeserver: { ...config.homeserver, server_name: "example.com" },
        });
        const result = await run(["-c", path, "-f", join(dir, "registration.yaml")]);
        expect(result.code).toBe(1);
        expect(result.stderr).toMatch(/'sender' @someone:example.org is not on 'homeserver.server_name' example.com/);
        expect(result.stderr).toMatch(/is neither the registration's sender_localpart \(account-data-audit\)/);
        expect(result.stderr).toContain("is NOT valid: 2 error(s), 0 warning(s).");
    });

    it("counts unknown keys as warnings, and fails on them with --strict", async () => {
        const path = await write("unknown.yaml", { ...config, audit: { secret: "post" } });
        const reg = ["-f", join(dir, "registration.yaml")];
        const lax = await run(["-c", path, ...reg]);
        expect(lax.code).toBe(0);
        expect(lax.stderr).toBe("Warning: unknown config key 'audit.secret' is ignored\n");
        expect(lax.stdout).toBe(`${path} is valid, with 1 warning(s).\n`);
        const strict = await run(["-c", path, ...reg, "--strict"]);
        expect(strict.code).toBe(1);
        expect(strict.stdout).toBe(`${path} is valid, with 1 warning(s) (--strict: failing).\n`);
    });

    it("still takes the file positionally, with a deprecation note; usage errors exit 2", async () => {
        const path = await write("old.yaml", config);
        const old = await run([path]);
        expect(old.code).toBe(0);
        expect(old.stderr).toContain("'validate-config FILE' is deprecated; use 'validate-config -c FILE'");
        expect((await run([])).code).toBe(2);
        expect((await run([path, "-c", path])).code).toBe(2);
        expect((await run(["-c", path, "--bogus"])).code).toBe(2);
    });
});
