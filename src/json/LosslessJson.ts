/**
 * A JSON parser that keeps what JavaScript's `JSON.parse` throws away, so an audit record can show exactly
 * the value the user stored:
 * - numbers keep their source text (`1.0` stays a float, `12345678901234567890` stays exact);
 * - object keys keep their order (JavaScript objects move integer-like keys to the front);
 * - duplicate keys behave as in Python's `json.loads`: the last value wins, at the first key's position.
 */

export type LosslessValue = null | boolean | string | LosslessNumber | LosslessValue[] | LosslessObject;

/** A JSON number as written in the source text. */
export class LosslessNumber {
    public constructor(public readonly source: string) {}

    /** True if Python's `json.loads` would read this as a float rather than an int. */
    public get isFloat(): boolean {
        return /[.eE]/.test(this.source);
    }
}

/** A JSON object with its keys in source order. */
export class LosslessObject {
    public readonly entries = new Map<string, LosslessValue>();
}

export class JsonSyntaxError extends Error {
    public constructor(
        message: string,
        public readonly position: number,
    ) {
        super(`${message} at position ${position}`);
        this.name = "JsonSyntaxError";
    }
}

const NUMBER_PATTERN = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);
const SIMPLE_ESCAPES: Record<string, string> = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    b: "\b",
    f: "\f",
    n: "\n",
    r: "\r",
    t: "\t",
};
/** Nesting deeper than this is refused rather than risking a stack overflow. */
const MAX_DEPTH = 512;

class Parser {
    private pos = 0;

    public constructor(private readonly text: string) {}

    public parseDocument(): LosslessValue {
        const value = this.parseValue(0);
        this.skipWhitespace();
        if (this.pos !== this.text.length) {
            throw new JsonSyntaxError("Unexpected data after the JSON value", this.pos);
        }
        return value;
    }

    private skipWhitespace(): void {
        while (this.pos < this.text.length && WHITESPACE.has(this.text[this.pos] as string)) {
            this.pos++;
        }
    }

    private parseValue(depth: number): LosslessValue {
        if (depth > MAX_DEPTH) {
            throw new JsonSyntaxError("JSON nested too deeply", this.pos);
        }
        this.skipWhitespace();
        const ch = this.text[this.pos];
        switch (ch) {
            case "{":
                return this.parseObject(depth);
            case "[":
                return this.parseArray(depth);
            case '"':
                return this.parseString();
            case "t":
                return this.parseLiteral("true", true);
            case "f":
                return this.parseLiteral("false", false);
            case "n":
                return this.parseLiteral("null", null);
            default:
                return this.parseNumber();
        }
    }

    private parseLiteral<T>(word: string, value: T): T {
        if (!this.text.startsWith(word, this.pos)) {
            throw new JsonSyntaxError("Unexpected token", this.pos);
        }
        this.pos += word.length;
        return value;
    }

    private parseNumber(): LosslessNumber {
        NUMBER_PATTERN.lastIndex = this.pos;
        const match = NUMBER_PATTERN.exec(this.text);
        if (!match) {
            throw new JsonSyntaxError(
                this.pos >= this.text.length ? "Unexpected end of JSON" : "Unexpected token",
                this.pos,
            );
        }
        this.pos += match[0].length;
        return new LosslessNumber(match[0]);
    }

    private parseString(): string {
        const start = this.pos;
        this.pos++; // opening quote
        let out = "";
        let chunkStart = this.pos;
        for (;;) {
            if (this.pos >= this.text.length) {
                throw new JsonSyntaxError("Unterminated string", start);
            }
            const code = this.text.charCodeAt(this.pos);
            if (code === 0x22) {
                out += this.text.slice(chunkStart, this.pos);
                this.pos++;
                return out;
            }
            if (code < 0x20) {
                throw new JsonSyntaxError("Control character in string", this.pos);
            }
            if (code !== 0x5c) {
                this.pos++;
                continue;
            }
            out += this.text.slice(chunkStart, this.pos);
            const escape = this.text[this.pos + 1];
            if (escape === "u") {
                const hex = this.text.slice(this.pos + 2, this.pos + 6);
                if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
                    throw new JsonSyntaxError("Invalid \\u escape", this.pos);
                }
                // Lone surrogates are kept as they are, as Python's json.loads does.
                out += String.fromCharCode(parseInt(hex, 16));
                this.pos += 6;
            } else if (escape !== undefined && escape in SIMPLE_ESCAPES) {
                out += SIMPLE_ESCAPES[escape];
                this.pos += 2;
            } else {
                throw new JsonSyntaxError("Invalid escape", this.pos);
            }
            chunkStart = this.pos;
        }
    }

    private expect(ch: string): void {
        this.skipWhitespace();
        if (this.text[this.pos] !== ch) {
            throw new JsonSyntaxError(`Expected '${ch}'`, this.pos);
        }
        this.pos++;
    }

    private parseArray(depth: number): LosslessValue[] {
        this.pos++;
        const items: LosslessValue[] = [];
        this.skipWhitespace();
        if (this.text[this.pos] === "]") {
            this.pos++;
            return items;
        }
        for (;;) {
            items.push(this.parseValue(depth + 1));
            this.skipWhitespace();
            if (this.text[this.pos] === ",") {
                this.pos++;
                continue;
            }
            this.expect("]");
            return items;
        }
    }

    private parseObject(depth: number): LosslessObject {
        this.pos++;
        const obj = new LosslessObject();
        this.skipWhitespace();
        if (this.text[this.pos] === "}") {
            this.pos++;
            return obj;
        }
        for (;;) {
            this.skipWhitespace();
            if (this.text[this.pos] !== '"') {
                throw new JsonSyntaxError("Expected a string key", this.pos);
            }
            const key = this.parseString();
            this.expect(":");
            obj.entries.set(key, this.parseValue(depth + 1));
            this.skipWhitespace();
            if (this.text[this.pos] === ",") {
                this.pos++;
                continue;
            }
            this.expect("}");
            return obj;
        }
    }
}

export function parseLossless(text: string): LosslessValue {
    return new Parser(text).parseDocument();
}

export type PlainJson = null | boolean | number | string | PlainJson[] | { [key: string]: PlainJson };

/** Ordinary JavaScript values (numbers become doubles; integer-like keys move first in objects). */
export function toPlainJson(value: LosslessValue): PlainJson {
    if (value instanceof LosslessNumber) return Number(value.source);
    if (Array.isArray(value)) return value.map(toPlainJson);
    if (value instanceof LosslessObject) {
        const out: { [key: string]: PlainJson } = {};
        for (const [key, item] of value.entries) out[key] = toPlainJson(item);
        return out;
    }
    return value;
}
