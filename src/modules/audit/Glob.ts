/**
 * Glob patterns for the audit policy: `*` matches any run of characters (also none), `?` exactly one, every
 * other character itself, and a pattern must match the whole string. Characters are Unicode code points: `?`
 * takes a whole astral character (and a lone surrogate on its own counts as one), and neither `*` nor a literal
 * ever splits a surrogate pair, as a regular expression with the `u` flag would do.
 *
 * The strings matched are chosen by the homeserver's users (an account-data type has no length limit), so the
 * match must not backtrack: a regular expression for `*.*.*.key` takes half a second on a type of 1,600 dots,
 * and grows with the fourth power. This is the classic greedy match that, on a mismatch, goes back only to the
 * last `*` seen: a later `*` can absorb anything an earlier one could, so earlier choices never need revisiting.
 * At most O(n·m) steps for a string of n and a pattern of m code points, and about n·(segment length) on
 * adversarial strings.
 */

/** In a compiled pattern: any run of code points. Real code points are never negative. */
const STAR = -1;
/** In a compiled pattern: exactly one code point. */
const ANY = -2;

/** The code points of `text`; a lone surrogate stays a code point of its own, as `for...of` gives it. */
function codePoints(text: string): Int32Array {
    const out = new Int32Array(text.length);
    let n = 0;
    for (let i = 0; i < text.length; i++) {
        const point = text.codePointAt(i) as number;
        out[n++] = point;
        if (point > 0xffff) i++;
    }
    return out.subarray(0, n);
}

function compile(glob: string): Int32Array {
    const points = codePoints(glob);
    const out = new Int32Array(points.length);
    let n = 0;
    for (const point of points) {
        if (point === 0x2a) {
            // `**` means the same as `*`; one star keeps the backtracking to a single resume point.
            if (out[n - 1] !== STAR) out[n++] = STAR;
        } else {
            out[n++] = point === 0x3f ? ANY : point;
        }
    }
    return out.subarray(0, n);
}

function matchCompiled(pattern: Int32Array, value: Int32Array): boolean {
    let p = 0;
    let v = 0;
    // Where the last `*` is in the pattern (-1: none yet), and the first value position it has not yet absorbed.
    let star = -1;
    let resume = 0;
    while (v < value.length) {
        const token = pattern[p];
        if (p < pattern.length && (token === ANY || token === value[v])) {
            p++;
            v++;
        } else if (token === STAR) {
            star = p++;
            resume = v;
        } else if (star >= 0) {
            // Let the last star absorb one more code point and retry what follows it.
            p = star + 1;
            v = ++resume;
        } else {
            return false;
        }
    }
    while (pattern[p] === STAR) p++;
    return p === pattern.length;
}

/** True if `glob` matches the whole of `value`. */
export function globMatches(glob: string, value: string): boolean {
    return matchCompiled(compile(glob), codePoints(value));
}

export class GlobSet {
    private readonly patterns: Int32Array[];

    public constructor(globs: readonly string[]) {
        this.patterns = globs.map(compile);
    }

    public matches(value: string): boolean {
        if (this.patterns.length === 0) return false;
        const points = codePoints(value);
        return this.patterns.some((pattern) => matchCompiled(pattern, points));
    }
}
