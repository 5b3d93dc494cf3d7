/**
 * `json.dumps(value)` exactly as Python writes it with its default arguments, so audit messages are
 * byte-identical to what Synapse's example module posts:
 * - separators `", "` and `": "`, keys in stored order;
 * - `ensure_ascii=True`: everything outside printable ASCII becomes `\uXXXX` (lower-case hex, UTF-16 units);
 * - floats as `repr(float)`: shortest round-trip digits, `1.0`, `1e+100`, `1e-05`, `-0.0`, `Infinity`;
 * - integers exact at any size.
 */
import { LosslessNumber, LosslessObject, type LosslessValue, parseLossless } from "./LosslessJson.js";

const NAMED_ESCAPES: Record<number, string> = {
    0x22: '\\"',
    0x5c: "\\\\",
    0x0a: "\\n",
    0x0d: "\\r",
    0x09: "\\t",
    0x08: "\\b",
    0x0c: "\\f",
};

/** Python's `py_encode_basestring_ascii`. */
export function pythonDumpsString(value: string): string {
    let out = '"';
    let chunkStart = 0;
    for (let i = 0; i < value.length; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x20 && code <= 0x7e && code !== 0x22 && code !== 0x5c) {
            continue;
        }
        out += value.slice(chunkStart, i);
        out += NAMED_ESCAPES[code] ?? "\\u" + code.toString(16).padStart(4, "0");
        chunkStart = i + 1;
    }
    return out + value.slice(chunkStart) + '"';
}

/** Python's `float.__repr__` for a finite or non-finite double. */
export function pythonFloatRepr(x: number): string {
    if (Number.isNaN(x)) return "NaN";
    if (x === Infinity) return "Infinity";
    if (x === -Infinity) return "-Infinity";
    if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";

    // toExponential() with no argument gives the shortest digits that round-trip, as Python's repr does.
    const [mantissa, exponentText] = Math.abs(x).toExponential().split("e") as [string, string];
    const digits = mantissa.replace(".", "");
    const decimalPoint = Number(exponentText) + 1; // value = 0.DIGITS * 10^decimalPoint
    const sign = x < 0 ? "-" : "";

    if (decimalPoint <= -4 || decimalPoint > 16) {
        const exponent = decimalPoint - 1;
        const expSign = exponent < 0 ? "-" : "+";
        const expDigits = String(Math.abs(exponent)).padStart(2, "0");
        const fraction = digits.length > 1 ? "." + digits.slice(1) : "";
        return `${sign}${digits[0]}${fraction}e${expSign}${expDigits}`;
    }
    if (decimalPoint <= 0) {
        return `${sign}0.${"0".repeat(-decimalPoint)}${digits}`;
    }
    if (decimalPoint >= digits.length) {
        return `${sign}${digits}${"0".repeat(decimalPoint - digits.length)}.0`;
    }
    return `${sign}${digits.slice(0, decimalPoint)}.${digits.slice(decimalPoint)}`;
}

/** A JSON number literal as Python reads it with `json.loads` and writes it back with `json.dumps`. */
export function pythonDumpsNumber(num: LosslessNumber): string {
    if (num.isFloat) {
        return pythonFloatRepr(Number(num.source));
    }
    // Python ints are arbitrary precision; BigInt also turns "-0" into "0" as int("-0") does.
    return BigInt(num.source).toString();
}

/** How `writeJson` lays out a value. */
interface Style {
    string: (value: string) => string;
    /** Each item on a line of its own, indented two spaces per level; or all on one line. */
    indented: boolean;
}

/** An open array (the items after `written` are still to write) or object (the entries `entries` has left). */
type Frame =
    { items: LosslessValue[]; written: number } | { entries: MapIterator<[string, LosslessValue]>; written: number };

/**
 * `value` as JSON text in `style`, or null as soon as the text grows beyond `limit` characters. Iterative,
 * with the open containers on an explicit stack: content may nest deeper than the call stack allows.
 */
function writeJson(value: LosslessValue, style: Style, limit: number): string | null {
    let out = "";
    // A line break and the indentation of each depth, made once: content has many lines at a few depths.
    const lines = ["\n"];
    const newline = (depth: number): string => {
        while (lines.length <= depth) lines.push(`${lines.at(-1)}  `);
        return lines[depth] as string;
    };
    const open: Frame[] = [];
    // The value to write next; undefined when the next step is to go on with the innermost open container.
    let next: LosslessValue | undefined = value;
    while (out.length <= limit) {
        if (next === null || typeof next === "boolean") {
            out += String(next);
        } else if (typeof next === "string") {
            out += style.string(next);
        } else if (next instanceof LosslessNumber) {
            out += pythonDumpsNumber(next);
        } else if (Array.isArray(next)) {
            out += next.length === 0 ? "[]" : "[";
            if (next.length > 0) open.push({ items: next, written: 0 });
        } else if (next instanceof LosslessObject) {
            out += next.entries.size === 0 ? "{}" : "{";
            if (next.entries.size > 0) open.push({ entries: next.entries.entries(), written: 0 });
        } else {
            const frame = open.at(-1);
            if (frame === undefined) return out;
            const depth = open.length;
            let key: string | null = null;
            if ("items" in frame) {
                next = frame.items[frame.written];
            } else {
                const entry = frame.entries.next();
                if (!entry.done) [key, next] = entry.value;
            }
            if (next === undefined) {
                open.pop();
                const close = "items" in frame ? "]" : "}";
                out += style.indented ? newline(depth - 1) + close : close;
            } else {
                const comma = frame.written++ > 0;
                if (style.indented) out += comma ? "," + newline(depth) : newline(depth);
                else if (comma) out += ", ";
                if (key !== null) out += style.string(key) + ": ";
            }
            continue;
        }
        next = undefined;
    }
    return null;
}

/**
 * JSON text for reading: `json.dumps(value, indent=2, ensure_ascii=False)` (numbers exactly as Python writes
 * them), except that control characters and lone surrogates stay escaped, so the text is always valid UTF-8.
 *
 * Indentation grows with the square of the depth (content nested 100,000 deep would take 20 GB), so a text
 * over PRETTY_MAX_CHARS is given on one line instead, separators as in `json.dumps`. Synapse refuses events
 * over 64 KiB, so an indented text that long could never be shown: the only change is to what nobody sees.
 */
export function prettyJson(value: LosslessValue): string {
    // Without a limit writeJson never gives null.
    return writeJson(value, READABLE, PRETTY_MAX_CHARS) ?? (writeJson(value, READABLE_ONE_LINE, Infinity) as string);
}

/** 16 times the largest event Synapse accepts. */
export const PRETTY_MAX_CHARS = 1024 * 1024;

const READABLE: Style = { string: readableString, indented: true };
const READABLE_ONE_LINE: Style = { string: readableString, indented: false };
const PYTHON: Style = { string: pythonDumpsString, indented: false };

function readableString(value: string): string {
    // Well-formed JSON.stringify (ES2019): escapes quotes, backslashes, control characters and lone surrogates,
    // and keeps every other character as it is.
    return JSON.stringify(value);
}

/** `json.dumps(value)` with Python's defaults. */
export function pythonDumps(value: LosslessValue): string {
    return writeJson(value, PYTHON, Infinity) as string; // never null without a limit
}

/** Reads JSON text as Python's `json.loads` would and writes it back as `json.dumps` would. */
export function pythonDumpsJsonText(text: string): string {
    return pythonDumps(parseLossless(text));
}

/**
 * `json.dumps` of a content whose JSON text Python's `json.dumps` wrote with compact separators, as the host
 * module writes every content: the same text with Python's default separators (", " and ": "), in one pass and
 * without building a value (a dense array of a million numbers costs milliseconds, not a second and 70 MB). Text
 * that Python did not write so (other number forms, escapes it would not use, duplicate keys, whitespace) is
 * shown as written; only what the host module delivers comes here (see ContentReader).
 */
export function pythonDumpsCompactText(text: string): string {
    const parts: string[] = [];
    let from = 0;
    let inString = false;
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (inString) {
            if (c === 0x5c)
                i++; // backslash: the next character is escaped
            else if (c === 0x22) inString = false;
        } else if (c === 0x22) {
            inString = true;
        } else if (c === 0x2c || c === 0x3a) {
            parts.push(text.slice(from, i + 1), " ");
            from = i + 1;
        }
    }
    parts.push(text.slice(from));
    return parts.join("");
}
