import { describe, expect, it } from "vitest";
import { globMatches, GlobSet } from "../../src/modules/audit/Glob.js";

const GRINNING = "\u{1f600}"; // one code point, two UTF-16 units: \ud83d \ude00

// [glob, value, matches]
const CASES: [string, string, boolean][] = [
    ["", "", true],
    ["", "a", false],
    ["*", "", true],
    ["*", "anything at all", true],
    ["***", "", true],
    ["**", "ab", true],
    ["?", "", false],
    ["?", "a", true],
    ["?", "ab", false],
    ["??", "ab", true],
    ["m.*", "m.direct", true],
    ["m.*", "m.", true],
    ["m.*", "m", false],
    ["m.*", "im.direct", false],
    ["m.direct", "m.direct", true],
    ["m.direct", "m.directx", false],
    ["m.direct", "m.Direct", false],
    ["*.key", "a.b.key", true],
    ["*.key", "a.b.keys", false],
    ["*.*.*.key", "a.b.c.key", true],
    ["*.*.*.key", "..key", false],
    ["*.*.*.key", "...key", true],
    ["a*b*c", "abc", true],
    ["a*b*c", "aXbYc", true],
    ["a*b*c", "acb", false],
    ["a*b", "abab", true],
    ["a*b", "abba", false],
    ["*ab", "aab", true],
    ["*a?b", "xxaZb", true],
    ["*a?b", "xxab", false],
    ["?*?", "a", false],
    ["?*?", "ab", true],
    // Regular-expression syntax means itself.
    [".", "a", false],
    ["a.c", "abc", false],
    ["a+", "aa", false],
    ["a+", "a+", true],
    ["[ab]", "a", false],
    ["[ab]", "[ab]", true],
    ["^$\\(){}|/", "^$\\(){}|/", true],
    ["a\\*", "a\\bc", true],
    ["a\\*", "abc", false],
    // `*` and `?` match line breaks like any other character.
    ["*", "a\nb", true],
    ["a?b", "a\nb", true],
    // Code points: an astral character is one `?`, and never split by `*` or a literal surrogate.
    ["?", GRINNING, true],
    ["??", GRINNING, false],
    ["x?y", `x${GRINNING}y`, true],
    ["*\ude00", GRINNING, false],
    ["\ud83d*", GRINNING, false],
    ["\ud83d?", GRINNING, false],
    [GRINNING, GRINNING, true],
    [`*${GRINNING}`, `a${GRINNING}`, true],
    // Lone surrogates are code points of their own.
    ["?", "\ud800", true],
    ["?x", "\udc00x", true],
    ["*\ud83d", "x\ud83d", true],
    ["??", "\ud800\udc00", false],
    ["??", "\udc00\ud800", true],
    ["é", "e\u0301", false],
];

/** The regular expression the policy used before (code-point semantics through the `u` flag): the oracle. */
function regexOracle(glob: string, value: string): boolean {
    let source = "";
    for (const char of glob) {
        if (char === "*") source += "[\\s\\S]*";
        else if (char === "?") source += "[\\s\\S]";
        else source += char.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    }
    return new RegExp(`^${source}$`, "u").test(value);
}

describe("globMatches", () => {
    it.each(CASES)("%j against %j: %s", (glob, value, expected) => {
        expect(globMatches(glob, value)).toBe(expected);
        expect(regexOracle(glob, value), "the table itself agrees with the old regex").toBe(expected);
    });

    it("agrees with the old regular expression on random short globs and strings", () => {
        // A small alphabet makes matches common; the surrogate halves make split pairs likely.
        const alphabet = ["a", "b", ".", GRINNING, "\ud83d", "\ude00", "\n"];
        let seed = 12345;
        const random = (n: number): number => {
            seed = (seed * 1103515245 + 12345) % 2 ** 31;
            return seed % n;
        };
        const randomString = (symbols: string[], maxLength: number): string =>
            Array.from({ length: random(maxLength + 1) }, () => symbols[random(symbols.length)]).join("");
        let matched = 0;
        for (let i = 0; i < 20_000; i++) {
            const glob = randomString([...alphabet, "*", "*", "?"], 6);
            const value = randomString(alphabet, 8);
            const expected = regexOracle(glob, value);
            if (expected) matched++;
            expect(globMatches(glob, value), `${JSON.stringify(glob)} against ${JSON.stringify(value)}`).toBe(expected);
        }
        expect(matched).toBeGreaterThan(1_000);
    });
});

describe("GlobSet", () => {
    it("matches if any of its globs matches", () => {
        const set = new GlobSet(["m.direct", "im.vector.*", "org.?"]);
        expect(set.matches("m.direct")).toBe(true);
        expect(set.matches("im.vector.setting.breadcrumbs")).toBe(true);
        expect(set.matches("org.x")).toBe(true);
        expect(set.matches("org.xy")).toBe(false);
        expect(set.matches("m.push_rules")).toBe(false);
    });

    it("matches nothing without globs", () => {
        expect(new GlobSet([]).matches("")).toBe(false);
        expect(new GlobSet([]).matches("m.direct")).toBe(false);
    });

    // A timing test means nothing on Stryker's instrumented code (`npm run mutation`, many times slower): there
    // a mutant that backtracks shows as a timeout in the next test instead.
    const timed = it.skipIf("__stryker__" in globalThis);
    timed("matches a 16 KiB adversarial type against adversarial globs in linear time", () => {
        // A backtracking regex takes O(n^k) on these (k stars): minutes per match at this length.
        const globs = [
            "*.*.*.key",
            "*.*.*.*.*.*.*.*.key",
            "*a*a*a*a*b",
            "*a*a*a*a*a*a*a*a*a*a*b",
            "*?*?*?*?*?*?*?*!",
            "a*a*a*a*a*a*a*a*a*a*a",
            "*aaaaaaaaaaaaaaaaaaab",
        ];
        const size = 16 * 1024;
        const values = [
            ".".repeat(size),
            "a".repeat(size),
            "a.".repeat(size / 2),
            `${"a".repeat(size - 1)}c`,
            GRINNING.repeat(size / 2),
        ];
        const sets = globs.map((glob) => new GlobSet([glob]));
        for (const set of sets) for (const value of values) set.matches(value); // warm up the JIT
        let best = Infinity;
        for (let run = 0; run < 3; run++) {
            let matched = 0;
            const start = performance.now();
            for (const set of sets) for (const value of values) if (set.matches(value)) matched++;
            best = Math.min(best, performance.now() - start);
            expect(matched, "only a*a*…*a matches, on the run of a's").toBe(1);
        }
        // 35 matches; about 1 ms for all of them on a laptop. The bound is generous so a busy CI machine
        // cannot make it flaky, yet a backtracking matcher misses it by orders of magnitude.
        expect(best).toBeLessThan(20);
    });

    it("still finds the matches in long strings", () => {
        const size = 16 * 1024;
        expect(new GlobSet(["*.*.*.key"]).matches(`${".".repeat(size)}key`)).toBe(true);
        expect(new GlobSet(["*a*a*a*a*b"]).matches(`${"a".repeat(size)}b`)).toBe(true);
        expect(new GlobSet(["a*a*a*a*a*a*a*a*a*a*a"]).matches("a".repeat(size))).toBe(true);
        expect(new GlobSet(["*?*?"]).matches(GRINNING.repeat(2))).toBe(true);
        expect(new GlobSet(["???"]).matches(GRINNING.repeat(2))).toBe(false);
    });
});
