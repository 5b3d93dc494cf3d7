import { execFileSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { describe, expect, it } from "vitest";
import { JsonSyntaxError, parseLossless } from "../../src/json/LosslessJson.js";
import { pythonDumpsJsonText, pythonFloatRepr } from "../../src/json/PythonJson.js";

/**
 * The random doubles' seed: AUDIT_TEST_SEED to replay a failure (the seed is printed when the test fails), else
 * a fresh one each run, so runs keep exploring.
 */
const SEED = process.env.AUDIT_TEST_SEED ? Number(process.env.AUDIT_TEST_SEED) >>> 0 : randomInt(2 ** 32);

/** mulberry32: a small seeded generator of uint32s (Math.random cannot be seeded). */
function seededUint32(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return (t ^ (t >>> 14)) >>> 0;
    };
}

// Expected strings are what CPython 3.11 prints for json.dumps(json.loads(input)).
const CASES: [string, string, string][] = [
    ["empty object (a deletion)", "{}", "{}"],
    ["simple", '{"a":1}', '{"a": 1}'],
    ["integer-like keys keep their order", '{"b":1,"2":2,"1":3,"a":[]}', '{"b": 1, "2": 2, "1": 3, "a": []}'],
    [
        "floats and big integers",
        '{"x":1.0,"y":1e100,"z":1E5,"w":-0.0,"v":0.0001,"u":0.00001,"t":1e16,"s":1e15,' +
            '"r":123456789012345678901234567890,"q":-0,"p":0.1,"o":2.5e-7,"n":1.7976931348623157e308,' +
            '"m":5e-324,"l":9999999999999998.0,"k":1.5e16,"j":100.0,"i":-1.25e-5,"h":9007199254740993}',
        '{"x": 1.0, "y": 1e+100, "z": 100000.0, "w": -0.0, "v": 0.0001, "u": 1e-05, "t": 1e+16, ' +
            '"s": 1000000000000000.0, "r": 123456789012345678901234567890, "q": 0, "p": 0.1, "o": 2.5e-07, ' +
            '"n": 1.7976931348623157e+308, "m": 5e-324, "l": 9999999999999998.0, "k": 1.5e+16, "j": 100.0, ' +
            '"i": -1.25e-05, "h": 9007199254740993}',
    ],
    [
        "escapes, non-ASCII, U+2028, control characters",
        String.raw`{"caf\u00e9":"na\u00efve \ud83d\ude00 \u2028 \u2029 \u0000 \u001f \u007f \"q\" \\ \/ \b\f\n\r\t"}`,
        String.raw`{"caf\u00e9": "na\u00efve \ud83d\ude00 \u2028 \u2029 \u0000 \u001f \u007f \"q\" \\ / \b\f\n\r\t"}`,
    ],
    ["lone surrogates survive", String.raw`{"lone":"\ud800 x \udfff"}`, String.raw`{"lone": "\ud800 x \udfff"}`],
    [
        "nested arrays",
        '{"nested":[[1,[2,[3,{"a":[true,false,null]}]]],[],{}]}',
        '{"nested": [[1, [2, [3, {"a": [true, false, null]}]]], [], {}]}',
    ],
    ["duplicate keys: last value, first position", '{"dup":1,"other":2,"dup":3}', '{"dup": 3, "other": 2}'],
    [
        "raw UTF-8 emoji, CJK and RTL text",
        '{"emoji":"😀","cjk":"漢字","rtl":"שלום"}',
        String.raw`{"emoji": "\ud83d\ude00", "cjk": "\u6f22\u5b57", "rtl": "\u05e9\u05dc\u05d5\u05dd"}`,
    ],
];

describe("pythonDumpsJsonText", () => {
    it.each(CASES)("%s", (_name, input, expected) => {
        expect(pythonDumpsJsonText(input)).toBe(expected);
    });

    it("rejects malformed JSON with a position", () => {
        for (const bad of ["", "{", '{"a":}', '{"a":1,}', "[1 2]", '{"a":01}', '"\\x"', "{} x", "NaN"]) {
            expect(() => parseLossless(bad), bad).toThrow(JsonSyntaxError);
        }
    });

    it("reads unclosed pathological nesting as a syntax error instead of overflowing the stack", () => {
        // No depth limit: Synapse stores deeper content than any fixed limit (see deepJson.test.ts).
        expect(() => parseLossless("[".repeat(100_000))).toThrow("Unexpected end of JSON at position 100000");
    });
});

describe("pythonFloatRepr", () => {
    it("matches CPython's repr for many random doubles", ({ onTestFailed }) => {
        onTestFailed(() => {
            process.stderr.write(`pythonFloatRepr: replay with AUDIT_TEST_SEED=${SEED}\n`);
        });
        const uint32 = seededUint32(SEED);
        const random = (): number => uint32() / 2 ** 32;
        const values: number[] = [];
        const view = new DataView(new ArrayBuffer(8));
        for (let i = 0; i < 3000; i++) {
            // Random bit patterns cover every exponent; skip NaN and infinities.
            view.setUint32(0, uint32());
            view.setUint32(4, uint32());
            const x = view.getFloat64(0);
            if (Number.isFinite(x)) values.push(x);
        }
        for (let i = 0; i < 1000; i++) values.push(Math.round(random() * 1e6) / 1e3, random() * 10 ** ((i % 40) - 20));
        const script = "import json,sys\nfor v in json.load(sys.stdin): print(repr(float(v)))";
        const input = "[" + values.map((v) => v.toExponential()).join(",") + "]";
        const expected = execFileSync("python3", ["-c", script], { input, encoding: "utf8" }).trimEnd().split("\n");
        expect(values.map(pythonFloatRepr), `seed ${SEED} (AUDIT_TEST_SEED=${SEED} replays it)`).toEqual(expected);
    });

    it("writes non-finite values as Python does", () => {
        expect(pythonDumpsJsonText('{"big":1e400,"neg":-1e400}')).toBe('{"big": Infinity, "neg": -Infinity}');
    });
});
