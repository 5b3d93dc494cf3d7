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
    protected readonly map = new Map<string, LosslessValue>();

    /** Its keys and values, in source order (a getter, so that a subclass may read them only when asked). */
    public get entries(): Map<string, LosslessValue> {
        return this.map;
    }
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
/** An array or object still open while the parser reads its elements. */
type Container = LosslessValue[] | LosslessObject;

/**
 * Iterative, with the open containers on an explicit stack: content nests as deep as the homeserver lets it
 * (Synapse's limit is Python's recursion limit, which differs between versions), and a recursive parser would
 * run out of call stack first. Errors, positions and messages are those of a plain recursive descent parser.
 */
class Parser {
    private pos = 0;

    public constructor(private readonly text: string) {}

    public parseDocument(): LosslessValue {
        const root = this.parseValue();
        // Containers opened and not yet closed, innermost last.
        const open: Container[] = [];
        let container = isContainer(root) ? root : undefined;
        // True right after a container's opening bracket: it may close at once, and needs no comma.
        let first = true;
        while (container !== undefined) {
            const close = Array.isArray(container) ? "]" : "}";
            this.skipWhitespace();
            const ch = this.text[this.pos];
            if (first ? ch === close : ch !== ",") {
                // The container ends here (or must: `expect` throws if not).
                if (first) this.pos++;
                else this.expect(close);
                container = open.pop();
                first = false;
                continue;
            }
            if (!first) this.pos++; // the comma
            let value: LosslessValue;
            if (Array.isArray(container)) {
                value = this.parseValue();
                container.push(value);
            } else {
                this.skipWhitespace();
                if (this.text[this.pos] !== '"') {
                    throw new JsonSyntaxError("Expected a string key", this.pos);
                }
                const key = this.parseString();
                this.expect(":");
                value = this.parseValue();
                // Map.set keeps a repeated key at its first position with the last value, as Python's dict does.
                // A nested container goes in empty and is filled in place; the result is the same.
                container.entries.set(key, value);
            }
            if (isContainer(value)) {
                open.push(container);
                container = value;
                first = true;
            } else {
                first = false;
            }
        }
        this.skipWhitespace();
        if (this.pos !== this.text.length) {
            throw new JsonSyntaxError("Unexpected data after the JSON value", this.pos);
        }
        return root;
    }

    private skipWhitespace(): void {
        while (this.pos < this.text.length && WHITESPACE.has(this.text[this.pos] as string)) {
            this.pos++;
        }
    }

    /** A scalar, or a new empty container whose opening bracket has been read (the caller reads the rest). */
    private parseValue(): LosslessValue {
        this.skipWhitespace();
        const ch = this.text[this.pos];
        switch (ch) {
            case "{":
                this.pos++;
                return new LosslessObject();
            case "[":
                this.pos++;
                return [];
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
}

function isContainer(value: LosslessValue): value is Container {
    return Array.isArray(value) || value instanceof LosslessObject;
}

export function parseLossless(text: string): LosslessValue {
    return new Parser(text).parseDocument();
}

export type PlainJson = null | boolean | number | string | PlainJson[] | { [key: string]: PlainJson };

type PlainObject = { [key: string]: PlainJson };

/** A container whose copy is made but not yet filled. */
type Unfilled = { array: LosslessValue[]; copy: PlainJson[] } | { object: LosslessObject; copy: PlainObject };

/** The plain value of a scalar; for a container, an empty copy, queued in `unfilled` to be filled. */
function plainShell(value: LosslessValue, unfilled: Unfilled[]): PlainJson {
    if (value instanceof LosslessNumber) return Number(value.source);
    if (Array.isArray(value)) {
        const copy: PlainJson[] = [];
        unfilled.push({ array: value, copy });
        return copy;
    }
    if (value instanceof LosslessObject) {
        const copy: PlainObject = {};
        unfilled.push({ object: value, copy });
        return copy;
    }
    return value;
}

/**
 * Ordinary JavaScript values (numbers become doubles; integer-like keys move first in objects). Iterative, as
 * the parser is, for content of any depth: a container's copy goes into its parent empty and is filled later.
 */
export function toPlainJson(value: LosslessValue): PlainJson {
    const unfilled: Unfilled[] = [];
    const root = plainShell(value, unfilled);
    for (let next = unfilled.pop(); next !== undefined; next = unfilled.pop()) {
        if ("array" in next) {
            for (const item of next.array) next.copy.push(plainShell(item, unfilled));
        } else {
            for (const [key, item] of next.object.entries) {
                // Defined, not assigned: a key "__proto__" must become a property, not the copy's prototype.
                Object.defineProperty(next.copy, key, {
                    value: plainShell(item, unfilled),
                    enumerable: true,
                    writable: true,
                    configurable: true,
                });
            }
        }
    }
    return root;
}
