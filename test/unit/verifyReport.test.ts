/** `verify`'s text report (describeReport) and its exit codes where no homeserver is needed. */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { describeReport, runVerify } from "../../src/verify/VerifyCommand.js";
import type { Report } from "../../src/verify/Verifier.js";

const TS = Date.UTC(2026, 0, 2, 3, 4, 5);
const REPORT: Report = {
    intact: true,
    records: 3,
    firstSeq: 1,
    lastSeq: 3,
    firstTs: TS,
    lastTs: TS + 1000,
    start: "genesis",
    newest: { seq: 3, ts: TS + 1000 },
    omittedByPolicy: 2,
    unchained: 4,
    duplicates: [],
    problems: [],
};

describe("the text report", () => {
    it("says how much was checked, from where, and INTACT", () => {
        expect(describeReport("!r:x", REPORT)).toBe(
            "Audit room !r:x: 3 records, seq 1–3 (from the chain's first record), 2026-01-02T03:04:05.000Z – " +
                "2026-01-02T03:04:06.000Z; newest record seq 3 at 2026-01-02T03:04:06.000Z; 2 seqs left out by the " +
                "audit policy; 4 older messages without a hash chain (not checked).\nINTACT",
        );
    });

    it("names where the trail starts", () => {
        const head = (start: Report["start"]) => describeReport("!r:x", { ...REPORT, start }).split("\n")[0];
        expect(head("from")).toContain("(from --from)");
        expect(head("state")).toContain("(continuing the last run)");
        expect(head("unanchored")).toContain("(NOT from the chain's first record)");
        expect(head(null)).toContain("(NOT from the chain's first record)");
    });

    it("says none for an empty room, with unknown times", () => {
        const empty = {
            ...REPORT,
            records: 0,
            firstSeq: null,
            lastSeq: null,
            firstTs: null,
            lastTs: null,
            newest: null,
        };
        expect(describeReport("!r:x", empty, "Export")).toBe(
            "Export !r:x: 0 records, seq -–- (none), ? – ?; 2 seqs left out by the audit policy; 4 older messages " +
                "without a hash chain (not checked).\nINTACT",
        );
    });

    it("lists resends as information and problems as BROKEN, the first then the others", () => {
        const text = describeReport("!r:x", {
            ...REPORT,
            intact: false,
            duplicates: [{ seq: 2, eventIds: ["$a", "$b"] }],
            problems: [
                { kind: "broken_link", seq: 3, eventId: "$c", detail: "d1" },
                { kind: "look_alike", seq: null, eventId: "$f", detail: "d2" },
                { kind: "stale", seq: null, eventId: "", detail: "d3" },
            ],
        });
        expect(text.split("\n").slice(1)).toEqual([
            "Info: seq 2 was posted more than once, identically ($a, $b)",
            "BROKEN: broken_link at seq 3 (event $c): d1",
            "  also: look_alike (event $f): d2",
            "  also: stale: d3",
        ]);
    });
});

describe("verify's exit codes", () => {
    const out: string[] = [];
    const err: string[] = [];
    afterEach(() => {
        vi.restoreAllMocks();
        out.length = 0;
        err.length = 0;
    });
    function capture(): void {
        vi.spyOn(process.stdout, "write").mockImplementation((text) => out.push(String(text)) > 0);
        vi.spyOn(process.stderr, "write").mockImplementation((text) => err.push(String(text)) > 0);
    }

    it("is 2 for arguments it cannot use, with the usage", async () => {
        capture();
        expect(await runVerify(["--bogus", "x"])).toBe(2);
        expect(err.join("")).toMatch(/^Unknown argument: --bogus x\nUsage: matrix-account-data-audit verify/);
    });

    it("is 2 when the export's files cannot be read", async () => {
        capture();
        expect(await runVerify(["--jsonl", "/nonexistent/audit.jsonl"])).toBe(2);
        expect(err.join("")).toMatch(/^verify: could not check the export: .*ENOENT/);
    });

    it("is 0 for an export holding no chained record, reporting it as such", async () => {
        capture();
        const file = join(await mkdtemp(join(tmpdir(), "verify-")), "a.jsonl");
        await writeFile(file, "not a record\n\n");
        expect(await runVerify(["--jsonl", file, "--max-age", "0"])).toBe(0);
        expect(out.join("")).toBe(
            `Export ${file}: 0 records, seq -–- (none), ? – ?; 0 seqs left out by the audit policy; 1 older messages ` +
                "without a hash chain (not checked).\nINTACT\n",
        );
    });

    it("is 1 when the export is not recent enough, with the report as JSON if asked", async () => {
        capture();
        const file = join(await mkdtemp(join(tmpdir(), "verify-")), "a.jsonl");
        await writeFile(file, "");
        expect(await runVerify(["--json", "--jsonl", file])).toBe(1);
        const report = JSON.parse(out.join("")) as { files: string[]; intact: boolean; problems: { kind: string }[] };
        expect(report).toMatchObject({ files: [file], intact: false, problems: [{ kind: "stale" }] });
    });
});
