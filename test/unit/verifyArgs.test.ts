/**
 * verify's argument parser, form by form (admin -c/-f, auditor --homeserver/--access-token/--room, --jsonl):
 * the exact refusal for each incomplete or mixed form, numeric options, the environment's token (auditors only);
 * and verify --jsonl's report of a seq the export holds twice, its name for several files, and --max-age in
 * seconds.
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { EXPORT_KEY } from "../../src/export/ExportLine.js";
import { DEFAULT_MAX_AGE_SECONDS, parseVerifyArgs, runVerify } from "../../src/verify/VerifyCommand.js";
import { chainOf, changeRecord, type Fields, lineOf } from "./trailFixtures.js";
import { captureOutput } from "./captureOutput.js";

const NOT_BOTH = "Give either -c and -f, or --homeserver, --access-token and --room, not both";
const INCOMPLETE = "Give -c and -f (admins), or --homeserver, --access-token and --room (auditors)";
const BOTH_ADMIN = "Both -c and -f are required";
const JSONL_ALONE = "--jsonl reads files: give no room, config or --state with it";

describe("verify's arguments", () => {
    it("refuses an option without its value, and numbers that are not whole", () => {
        expect(parseVerifyArgs(["-c", "a", "-f", "r", "--from"], {})).toBe("Missing a value after --from");
        for (const option of ["--from", "--max-age"]) {
            for (const bad of ["x5", "5x", "-1", "1.5"]) {
                expect(parseVerifyArgs(["-c", "a", "-f", "r", option, bad], {})).toBe(
                    `Unknown argument: ${option} ${bad}`,
                );
            }
        }
        expect(parseVerifyArgs(["-c", "a", "-f", "r", "--from", "12", "--max-age", "3600"], {})).toEqual({
            config: "a",
            registration: "r",
            fromSeq: 12,
            maxAgeSeconds: 3600,
            json: false,
        });
        expect(parseVerifyArgs(["-c", "a", "-f", "r", "--bogus", "12"], {})).toBe("Unknown argument: --bogus 12");
    });

    it("asks for both -c and -f from an admin", () => {
        expect(parseVerifyArgs(["-c", "a"], {})).toBe(BOTH_ADMIN);
        expect(parseVerifyArgs(["-f", "r"], {})).toBe(BOTH_ADMIN);
        expect(parseVerifyArgs(["--config", "a", "--file", "r"], {})).toEqual({
            config: "a",
            registration: "r",
            fromSeq: 0,
            maxAgeSeconds: DEFAULT_MAX_AGE_SECONDS,
            json: false,
        });
    });

    it("refuses the admin's and the auditor's forms mixed, whichever auditor option is given", () => {
        for (const auditor of [
            ["--homeserver", "h"],
            ["--room", "!r"],
            ["--access-token", "t"],
        ]) {
            expect(parseVerifyArgs(["-c", "a", "-f", "r", ...auditor], {})).toBe(NOT_BOTH);
            expect(parseVerifyArgs(["-f", "r", ...auditor], {})).toBe(NOT_BOTH);
            expect(parseVerifyArgs(["-c", "a", ...auditor], {})).toBe(NOT_BOTH);
        }
    });

    it("asks an auditor for all three, the token from the environment if not given", () => {
        expect(parseVerifyArgs(["--homeserver", "h", "--room", "!r"], {})).toBe(INCOMPLETE);
        expect(parseVerifyArgs(["--homeserver", "h", "--room", "!r"], { MATRIX_ACCESS_TOKEN: "" })).toBe(INCOMPLETE);
        expect(parseVerifyArgs(["--homeserver", "h", "--access-token", "t"], {})).toBe(INCOMPLETE);
        expect(parseVerifyArgs(["--access-token", "t", "--room", "!r"], {})).toBe(INCOMPLETE);
        expect(parseVerifyArgs([], {})).toBe(INCOMPLETE);
        expect(parseVerifyArgs(["--homeserver", "h", "--room", "!r"], { MATRIX_ACCESS_TOKEN: "env" })).toEqual({
            homeserver: "h",
            room: "!r",
            accessToken: "env",
            fromSeq: 0,
            maxAgeSeconds: DEFAULT_MAX_AGE_SECONDS,
            json: false,
        });
        expect(
            parseVerifyArgs(["--homeserver", "h", "--room", "!r", "--access-token", "own"], {
                MATRIX_ACCESS_TOKEN: "env",
            }),
        ).toMatchObject({ accessToken: "own" });
        // An admin never takes the environment's token.
        expect(parseVerifyArgs(["-c", "a", "-f", "r"], { MATRIX_ACCESS_TOKEN: "env" })).not.toHaveProperty(
            "accessToken",
        );
    });

    it("refuses --jsonl with any room, config or state option, each on its own", () => {
        for (const other of [
            ["-c", "a"],
            ["-f", "r"],
            ["--homeserver", "h"],
            ["--room", "!r"],
            ["--state", "s"],
        ]) {
            // Before --jsonl: every argument after it up to the next long option is a file.
            expect(parseVerifyArgs([...other, "--jsonl", "a.jsonl"], {})).toBe(JSONL_ALONE);
        }
        expect(parseVerifyArgs(["--jsonl", "a.jsonl", "--access-token", "t"], {})).toMatchObject({
            jsonl: ["a.jsonl"],
        });
    });
});

describe("verify --jsonl", () => {
    let dir: string;
    let out: string[];

    beforeEach(async () => {
        dir = await mkdtemp(join(tmpdir(), "verify-args-"));
        ({ out } = captureOutput());
    });
    afterEach(() => vi.restoreAllMocks());

    const lineFor = (f: Fields) => JSON.stringify({ message: lineOf(f), [EXPORT_KEY]: f });

    it("reports a seq the export holds twice, naming both lines, and names every file", async () => {
        const [one, two] = chainOf(2) as [Fields, Fields];
        const first = join(dir, "a.jsonl.1");
        const second = join(dir, "a.jsonl");
        await writeFile(first, `${lineFor(one)}\n${lineFor(two)}\n`);
        await writeFile(second, `${lineFor(two)}\n`);
        expect(await runVerify(["--jsonl", first, second, "--max-age", "0"])).toBe(1);
        expect(out.join("")).toBe(
            `Export ${first}, ${second}: 2 records, seq 1–2 (from the chain's first record), ` +
                "1970-01-01T00:16:41.000Z – 1970-01-01T00:16:42.000Z; newest record seq 2 at 1970-01-01T00:16:42.000Z; " +
                "0 seqs left out by the audit policy; 0 older messages without a hash chain (not checked).\n" +
                `Info: seq 2 was posted more than once, identically (${first}:2, ${second}:1)\n` +
                `BROKEN: conflicting_records at seq 2 (event ${first}:2, ${second}:1): the export holds this seq more ` +
                "than once\n",
        );
    });

    it("takes --max-age in seconds", async () => {
        const recent = changeRecord(1, null, { ts: Date.now() - 60_000 });
        const file = join(dir, "recent.jsonl");
        await writeFile(file, `${lineFor(recent)}\n`);
        expect(await runVerify(["--jsonl", file, "--max-age", "3600"])).toBe(0);
        expect(await runVerify(["--jsonl", file, "--max-age", "30"])).toBe(1);
    });
});
