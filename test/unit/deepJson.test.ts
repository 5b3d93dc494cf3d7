import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
    JsonSyntaxError,
    type LosslessValue,
    LosslessObject,
    parseLossless,
    type PlainJson,
    toPlainJson,
} from "../../src/json/LosslessJson.js";
import { PRETTY_MAX_CHARS, prettyJson, pythonDumps } from "../../src/json/PythonJson.js";
import { jsonBlock } from "../../src/modules/audit/Html.js";
import { AuditModule } from "../../src/modules/AuditModule.js";
import { expectSafeHtml } from "../htmlSubset.js";
import { change, setup } from "./moduleFakes.js";

// Synapse stores content nested as deep as Python's recursion limit lets it, which differs between versions.
const DEPTHS = [600, 10_000, 100_000];

/** Nesting `depth` deep around `inner`: in JSON text as written compactly, and as Python's json.dumps writes it. */
function nested(depth: number, kind: "array" | "object" | "mixed", inner: string): { compact: string; python: string } {
    const open = (i: number) =>
        kind === "array" || (kind === "mixed" && i % 2 === 1) ? ["[", "["] : ['{"k":', '{"k": '];
    const close = (i: number) => (open(i)[0] === "[" ? "]" : "}");
    let compact = "";
    let python = "";
    for (let i = 0; i < depth; i++) {
        const [c, p] = open(i);
        compact += c;
        python += p;
    }
    let closing = "";
    for (let i = depth - 1; i >= 0; i--) closing += close(i);
    return { compact: compact + inner + closing, python: python + inner + closing };
}

/** How deep `value` nests (containers on the longest path), level by level rather than by recursion. */
function depthOf(value: PlainJson): number {
    let depth = 0;
    for (let level = [value]; ; depth++) {
        const containers = level.filter((item) => item !== null && typeof item === "object");
        if (containers.length === 0) return depth;
        level = containers.flatMap((item) => Object.values(item));
    }
}

/** The message `parseLossless(text)` throws, checking it is a JsonSyntaxError. */
function syntaxError(text: string): string {
    try {
        parseLossless(text);
    } catch (err) {
        expect(err).toBeInstanceOf(JsonSyntaxError);
        return (err as JsonSyntaxError).message;
    }
    throw new Error(`${JSON.stringify(text)} parsed`);
}

describe("content of any depth", () => {
    for (const depth of DEPTHS) {
        for (const kind of ["array", "object", "mixed"] as const) {
            it(`parses and dumps ${kind === "mixed" ? "objects and arrays" : `${kind}s`} nested ${depth} deep as Python does`, () => {
                const { compact, python } = nested(depth, kind, '"x"');
                const value = parseLossless(compact);
                expect(pythonDumps(value)).toBe(python);
                expect(depthOf(toPlainJson(value))).toBe(depth);
            });
        }

        it(`keeps empty containers and whitespace-separated nesting ${depth} deep`, () => {
            const text = `${" [ \n".repeat(depth)}${"\t]\r".repeat(depth)}`;
            expect(pythonDumps(parseLossless(text))).toBe("[".repeat(depth) + "]".repeat(depth));
        });

        it(`reads unclosed or wrongly closed nesting ${depth} deep as a syntax error, not a stack overflow`, () => {
            expect(syntaxError("[".repeat(depth))).toBe(`Unexpected end of JSON at position ${depth}`);
            expect(syntaxError(`${"[".repeat(depth)}1}`)).toBe(`Expected ']' at position ${depth + 1}`);
            expect(syntaxError(`${'{"a":'.repeat(depth)}1]`)).toBe(`Expected '}' at position ${depth * 5 + 1}`);
        });
    }

    it("agrees with CPython on content 600 deep, indented and not", () => {
        // 600 is within CPython's default recursion limit, so json.dumps can write it.
        const { compact } = nested(600, "mixed", '{"s":"caf\\u00e9 <b>","n":[1.0,2,1e100]}');
        const script =
            "import json,sys\nv=json.load(sys.stdin)\n" +
            "sys.stdout.write(json.dumps(v)+'\\0'+json.dumps(v,indent=2,ensure_ascii=False))";
        const [dumps, indented] = execFileSync("python3", ["-c", script], { input: compact, encoding: "utf8" }).split(
            "\0",
        );
        const value = parseLossless(compact);
        expect(pythonDumps(value)).toBe(dumps);
        expect(indented?.length).toBeLessThan(PRETTY_MAX_CHARS);
        expect(prettyJson(value)).toBe(indented);
    });

    it("keeps duplicate keys' last value at the first position, also for nested containers", () => {
        const text =
            '{"a":{"x":[1,{"a":1}]},"b":[],"a":[{"y":{}},[]],' +
            '"c":{"z":null,"y":1,"z":[{"q":1,"r":2,"q":{"s":[]}}]}}';
        expect(pythonDumps(parseLossless(text))).toBe(
            '{"a": [{"y": {}}, []], "b": [], "c": {"z": [{"q": {"s": []}, "r": 2}], "y": 1}}',
        );
    });

    it("reports malformed JSON exactly as before", () => {
        // The messages and positions of the recursive parser this one replaced.
        const cases: [string, string][] = [
            ["", "Unexpected end of JSON at position 0"],
            [" ", "Unexpected end of JSON at position 1"],
            ["{", "Expected a string key at position 1"],
            ["[", "Unexpected end of JSON at position 1"],
            ["]", "Unexpected token at position 0"],
            ['{"a"', "Expected ':' at position 4"],
            ['{"a":', "Unexpected end of JSON at position 5"],
            ['{"a":}', "Unexpected token at position 5"],
            ['{"a":1,}', "Expected a string key at position 7"],
            ['{"a":1 "b":2}', "Expected '}' at position 7"],
            ["{,}", "Expected a string key at position 1"],
            ["[,]", "Unexpected token at position 1"],
            ["[1,]", "Unexpected token at position 3"],
            ["[1 2]", "Expected ']' at position 3"],
            ["[1}", "Expected ']' at position 2"],
            ['{"a":1]', "Expected '}' at position 6"],
            ['{"a" 1}', "Expected ':' at position 5"],
            ["{1:2}", "Expected a string key at position 1"],
            ["[01]", "Expected ']' at position 2"],
            ['"\\x"', "Invalid escape at position 1"],
            ['"\\u12g4"', "Invalid \\u escape at position 1"],
            ['"abc', "Unterminated string at position 0"],
            ['"a\u0001"', "Control character in string at position 2"],
            ["{} x", "Unexpected data after the JSON value at position 3"],
            ["[] []", "Unexpected data after the JSON value at position 3"],
            ["tru", "Unexpected token at position 0"],
            ["1.", "Unexpected data after the JSON value at position 1"],
            ["[[]]]", "Unexpected data after the JSON value at position 4"],
            ['{"a":[}', "Unexpected token at position 6"],
            ['{"a":{"b":[1,{"c":}]}}', "Unexpected token at position 18"],
            ["\t[\n1\r,\n ]", "Unexpected token at position 8"],
        ];
        for (const [text, message] of cases) expect(syntaxError(text), JSON.stringify(text)).toBe(message);
    });

    it("takes time in proportion to the content, not to the square of its depth", () => {
        const { compact, python } = nested(100_000, "mixed", "1");
        const start = performance.now();
        const value = parseLossless(compact);
        expect(pythonDumps(value)).toBe(python);
        const pretty = prettyJson(value);
        toPlainJson(value);
        // About 100 ms on a laptop: generous for a loaded machine, far below an indented text of 20 GB.
        expect(performance.now() - start).toBeLessThan(3_000);
        expect(pretty).toBe(python);
    });
});

describe("prettyJson", () => {
    it("indents as json.dumps(indent=2) up to PRETTY_MAX_CHARS, and above that writes one line", () => {
        // ["xxx…"] indented is `[\n  "xxx…"\n]`: 8 characters around the x's.
        const fits = prettyJson(parseLossless(`["${"x".repeat(PRETTY_MAX_CHARS - 8)}"]`));
        expect(fits).toHaveLength(PRETTY_MAX_CHARS);
        expect(fits.startsWith('[\n  "x')).toBe(true);
        expect(prettyJson(parseLossless(`["${"x".repeat(PRETTY_MAX_CHARS - 7)}"]`))).toBe(
            `["${"x".repeat(PRETTY_MAX_CHARS - 7)}"]`,
        );
    });

    it("writes deep content on one line with json.dumps's separators, keeping characters readable", () => {
        const { compact } = nested(10_000, "mixed", '{"s":"café \\u0000 \\ud800","a":[1,2]}');
        const expected = nested(10_000, "mixed", '{"s": "café \\u0000 \\ud800", "a": [1, 2]}').python;
        expect(prettyJson(parseLossless(compact))).toBe(expected);
    });

    it("escapes deep hostile content in the HTML block", () => {
        for (const depth of DEPTHS) {
            const hostile = '"</code></pre><img src=x onerror=alert(1)><script>x</script> & \' \\""';
            const value = parseLossless(nested(depth, "mixed", `{"<b>":${hostile}}`).compact);
            const html = jsonBlock(prettyJson(value), 1);
            expectSafeHtml(html);
            const inner =
                /^<details><summary>Content \(1 bytes\)<\/summary><pre><code class="language-json">(.*)<\/code><\/pre><\/details>$/s.exec(
                    html,
                )?.[1];
            expect(inner, `depth ${depth}`).toBeDefined();
            expect(inner).not.toMatch(/[<>"']/);
            const unescaped = (inner as string)
                .replace(/&lt;/g, "<")
                .replace(/&gt;/g, ">")
                .replace(/&quot;/g, '"')
                .replace(/&#39;/g, "'")
                .replace(/&amp;/g, "&");
            expect(unescaped).toBe(prettyJson(value));
        }
    });
});

describe("toPlainJson", () => {
    it("gives ordinary values at any depth", () => {
        const value = parseLossless(nested(100_000, "object", '[1.5,"s",true,null,{"2":0,"1":1}]').compact);
        let plain = toPlainJson(value);
        for (let i = 0; i < 100_000; i++) plain = (plain as { k: PlainJson }).k;
        expect(plain).toEqual([1.5, "s", true, null, { "1": 1, "2": 0 }]);
        expect(JSON.stringify(plain)).toBe('[1.5,"s",true,null,{"1":1,"2":0}]');
    });

    it("keeps lossless values' structure for scalars and empty containers", () => {
        const scalars: [LosslessValue, PlainJson][] = [
            [parseLossless("12345678901234567890"), Number("12345678901234567890")],
            [parseLossless('"s"'), "s"],
            [null, null],
            [new LosslessObject(), {}],
            [[], []],
        ];
        for (const [value, plain] of scalars) expect(toPlainJson(value)).toEqual(plain);
    });
});

const ALICE = "@alice:example.org";

describe("the audit trail", () => {
    it("posts a change nested 100,000 deep promptly, its content escaped", async () => {
        const { host, sender } = setup();
        new AuditModule(
            {
                audit_room: "!audit:example.org",
                sender: "@audit:example.org",
                audit: { rules: [], secrets: "withhold" },
            },
            host.api,
        );
        const { compact } = nested(100_000, "mixed", '"<script>"');
        const start = performance.now();
        await host.dispatch(change("c1", `{"a":${compact}}`));
        expect(performance.now() - start).toBeLessThan(3_000);
        const content = sender.sent[0]?.content as Record<string, unknown>;
        const body = content.body as string;
        expect(
            body.startsWith(`${ALICE} has changed their account data for type m.test to: {"a": {"k": [{"k": [`),
        ).toBe(true);
        expect(body).toMatch(/ \[content cut to fit in one event: showing \d+ of \d+ characters\]$/);
        expectSafeHtml(content.formatted_body as string);
        expect(content.formatted_body).not.toContain("<script>");
    });
});

describe("toPlainJson and hostile keys", () => {
    it("keeps a __proto__ key as a property of its own, never as the copy's prototype", () => {
        const plain = toPlainJson(parseLossless('{"__proto__":{"polluted":true},"a":1}')) as Record<string, unknown>;
        expect(Object.keys(plain)).toEqual(["__proto__", "a"]);
        expect(Object.getPrototypeOf(plain)).toBe(Object.prototype);
        expect((plain as { polluted?: unknown }).polluted).toBeUndefined();
        expect(JSON.stringify(plain)).toBe('{"__proto__":{"polluted":true},"a":1}');
    });
});
