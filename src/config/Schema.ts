/**
 * A tiny schema language: one definition gives a config section's TypeScript type, its validation with
 * errors that name the key path, its defaults, and the commented sample file (see Sample.ts).
 */
import { ConfigError, InvalidConfigError } from "../Errors.js";

export interface FieldSpec<T> {
    readonly kind: "field";
    readonly doc: string;
    /** `undefined` means the key is required. */
    readonly default: T | undefined;
    /** The value written into config.sample.yaml (defaults to `default`). */
    readonly sample: unknown;
    parse(value: unknown, path: string): T;
}

export interface SectionSpec<F extends Fields> {
    readonly kind: "section";
    readonly doc: string;
    readonly fields: F;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- sections nest sections of any shape
export type Fields = Record<string, FieldSpec<any> | SectionSpec<any>>;

export type Infer<N> =
    N extends FieldSpec<infer T>
        ? T
        : N extends SectionSpec<infer F>
          ? { readonly [K in keyof F]: Infer<F[K]> }
          : never;

export function section<F extends Fields>(doc: string, fields: F): SectionSpec<F> {
    return { kind: "section", doc, fields };
}

interface FieldOptions<T> {
    doc: string;
    default?: T;
    sample?: unknown;
}

function field<T>(opts: FieldOptions<T>, parse: (value: unknown, path: string) => T): FieldSpec<T> {
    return {
        kind: "field",
        doc: opts.doc,
        default: opts.default,
        sample: opts.sample !== undefined ? opts.sample : opts.default,
        parse,
    };
}

export function stringField(
    opts: FieldOptions<string> & { check?: (value: string) => string | undefined },
): FieldSpec<string> {
    return field(opts, (value, path) => {
        if (typeof value !== "string") {
            throw new ConfigError(path, `'${path}' must be a string, got ${describe(value)}`);
        }
        const problem = opts.check?.(value);
        if (problem) {
            throw new ConfigError(path, `'${path}' ${problem}, got ${JSON.stringify(value)}`);
        }
        return value;
    });
}

export function optionalStringField(opts: { doc: string; sample?: unknown }): FieldSpec<string | null> {
    return field({ ...opts, default: null }, (value, path) => {
        if (value === null || typeof value === "string") {
            return value === "" ? null : value;
        }
        throw new ConfigError(path, `'${path}' must be a string or null, got ${describe(value)}`);
    });
}

export function integerField(opts: FieldOptions<number> & { min: number; max: number }): FieldSpec<number> {
    return field(opts, (value, path) => {
        if (typeof value !== "number" || !Number.isInteger(value)) {
            throw new ConfigError(path, `'${path}' must be an integer, got ${describe(value)}`);
        }
        if (value < opts.min || value > opts.max) {
            throw new ConfigError(path, `'${path}' must be between ${opts.min} and ${opts.max}, got ${value}`);
        }
        return value;
    });
}

export function booleanField(opts: FieldOptions<boolean>): FieldSpec<boolean> {
    return field(opts, (value, path) => {
        if (typeof value !== "boolean") {
            throw new ConfigError(path, `'${path}' must be true or false, got ${describe(value)}`);
        }
        return value;
    });
}

export function enumField<const T extends string>(opts: FieldOptions<T> & { values: readonly T[] }): FieldSpec<T> {
    return field(opts, (value, path) => {
        if (typeof value !== "string" || !(opts.values as readonly string[]).includes(value)) {
            throw new ConfigError(path, `'${path}' must be one of ${opts.values.join(", ")}, got ${describe(value)}`);
        }
        return value as T;
    });
}

type StringListOptions<D> = { doc: string; default?: D; sample?: unknown } & {
    check?: (value: string) => string | undefined;
};

/** A list of non-empty strings (e.g. glob patterns); with `default: null`, absent means "not given". */
export function stringListField(opts: StringListOptions<string[]>): FieldSpec<string[]>;
export function stringListField(opts: StringListOptions<null> & { default: null }): FieldSpec<string[] | null>;
export function stringListField(opts: StringListOptions<string[] | null>): FieldSpec<string[] | null> {
    return field<string[] | null>(opts, (value, path) => {
        if (!Array.isArray(value)) {
            throw new ConfigError(path, `'${path}' must be a list of strings, got ${describe(value)}`);
        }
        return value.map((item: unknown, i) => {
            const itemPath = `${path}[${i}]`;
            if (typeof item !== "string" || item.length === 0) {
                throw new ConfigError(itemPath, `'${itemPath}' must be a non-empty string, got ${describe(item)}`);
            }
            const problem = opts.check?.(item);
            if (problem) throw new ConfigError(itemPath, `'${itemPath}' ${problem}, got ${JSON.stringify(item)}`);
            return item;
        });
    });
}

/**
 * A list of mappings, each validated against `item` (every problem reported, with paths like
 * `audit.rules[2].level`). Unknown keys inside an item are errors: in a list of rules a misspelt key would
 * silently change what the rule does.
 */
export function listField<F extends Fields>(
    opts: FieldOptions<Infer<SectionSpec<F>>[]> & { item: SectionSpec<F> },
): FieldSpec<Infer<SectionSpec<F>>[]> & { readonly item: SectionSpec<F> } {
    const spec = field(opts, (value, path) => {
        if (!Array.isArray(value)) {
            throw new ConfigError(path, `'${path}' must be a list, got ${describe(value)}`);
        }
        const problems: ConfigError[] = [];
        const items = value.map((raw: unknown, i) => {
            const unknownKeys: string[] = [];
            const parsed = collectFields(opts.item.fields, raw, problems, unknownKeys, `${path}[${i}].`);
            for (const key of unknownKeys) problems.push(new ConfigError(key, `'${key}' is not a known key`));
            return parsed;
        });
        if (problems.length > 0) throw new InvalidConfigError(problems);
        return items;
    });
    return { ...spec, item: opts.item };
}

function describe(value: unknown): string {
    if (value === null) return "null";
    if (Array.isArray(value)) return "a list";
    if (typeof value === "object") return "a mapping";
    return `${typeof value} ${JSON.stringify(value)}`;
}

function isMapping(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Validates `raw` against `fields` and fills in defaults. A key whose value is missing or null takes its
 * default, or is reported as required. Every problem is added to `problems` (the result is then incomplete
 * and must not be used); unknown keys are collected in `unknownKeys` (dotted paths).
 */
export function collectFields<F extends Fields>(
    fields: F,
    raw: unknown,
    problems: ConfigError[],
    unknownKeys: string[],
    prefix = "",
): Infer<SectionSpec<F>> {
    const result: Record<string, unknown> = {};
    if (!isMapping(raw)) {
        const where = prefix ? `'${prefix.slice(0, -1)}'` : "The config";
        problems.push(new ConfigError(prefix.slice(0, -1), `${where} must be a mapping, got ${describe(raw)}`));
        return result as Infer<SectionSpec<F>>;
    }
    for (const [key, spec] of Object.entries(fields)) {
        const path = prefix + key;
        const value = raw[key];
        if (spec.kind === "section") {
            result[key] = collectFields(spec.fields as Fields, value ?? {}, problems, unknownKeys, `${path}.`);
        } else if (value === undefined || value === null) {
            if (spec.default === undefined) {
                problems.push(new ConfigError(path, `'${path}' is required`));
            }
            result[key] = spec.default;
        } else {
            try {
                result[key] = spec.parse(value, path);
            } catch (err) {
                if (err instanceof InvalidConfigError) problems.push(...err.problems);
                else if (err instanceof ConfigError) problems.push(err);
                else throw err;
            }
        }
    }
    for (const key of Object.keys(raw)) {
        if (!(key in fields)) unknownKeys.push(prefix + key);
    }
    return result as Infer<SectionSpec<F>>;
}

/** `collectFields`, throwing InvalidConfigError with every problem if there is any. */
export function parseFields<F extends Fields>(
    fields: F,
    raw: unknown,
    unknownKeys: string[] = [],
): Infer<SectionSpec<F>> {
    const problems: ConfigError[] = [];
    const result = collectFields(fields, raw, problems, unknownKeys);
    if (problems.length > 0) throw new InvalidConfigError(problems, unknownKeys);
    return result;
}
