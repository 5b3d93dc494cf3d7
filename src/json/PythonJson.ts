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

function dumpsInto(value: LosslessValue, out: string[]): void {
    if (value === null) {
        out.push("null");
    } else if (value === true) {
        out.push("true");
    } else if (value === false) {
        out.push("false");
    } else if (typeof value === "string") {
        out.push(pythonDumpsString(value));
    } else if (value instanceof LosslessNumber) {
        out.push(pythonDumpsNumber(value));
    } else if (Array.isArray(value)) {
        out.push("[");
        value.forEach((item, i) => {
            if (i > 0) out.push(", ");
            dumpsInto(item, out);
        });
        out.push("]");
    } else {
        out.push("{");
        let first = true;
        for (const [key, item] of (value as LosslessObject).entries) {
            if (!first) out.push(", ");
            first = false;
            out.push(pythonDumpsString(key), ": ");
            dumpsInto(item, out);
        }
        out.push("}");
    }
}

/**
 * JSON text for reading: `json.dumps(value, indent=2, ensure_ascii=False)` (numbers exactly as Python writes
 * them), except that control characters and lone surrogates stay escaped, so the text is always valid UTF-8.
 */
export function prettyJson(value: LosslessValue, indent = ""): string {
    if (value === null || typeof value === "boolean") return String(value);
    if (typeof value === "string") return readableString(value);
    if (value instanceof LosslessNumber) return pythonDumpsNumber(value);
    const inner = `${indent}  `;
    if (Array.isArray(value)) {
        if (value.length === 0) return "[]";
        return `[\n${value.map((item) => inner + prettyJson(item, inner)).join(",\n")}\n${indent}]`;
    }
    const entries = [...(value as LosslessObject).entries];
    if (entries.length === 0) return "{}";
    const lines = entries.map(([key, item]) => `${inner}${readableString(key)}: ${prettyJson(item, inner)}`);
    return `{\n${lines.join(",\n")}\n${indent}}`;
}

function readableString(value: string): string {
    // Well-formed JSON.stringify (ES2019): escapes quotes, backslashes, control characters and lone surrogates,
    // and keeps every other character as it is.
    return JSON.stringify(value);
}

/** `json.dumps(value)` with Python's defaults. */
export function pythonDumps(value: LosslessValue): string {
    const out: string[] = [];
    dumpsInto(value, out);
    return out.join("");
}

/** Reads JSON text as Python's `json.loads` would and writes it back as `json.dumps` would. */
export function pythonDumpsJsonText(text: string): string {
    return pythonDumps(parseLossless(text));
}
