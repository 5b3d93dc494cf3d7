/** Glob patterns for the audit policy: `*` matches any run of characters (also none), `?` exactly one. */

/** Matches `glob` against a whole string; every other character matches itself. */
export function globToRegExp(glob: string): RegExp {
    let source = "";
    for (const char of glob) {
        if (char === "*") source += "[\\s\\S]*";
        else if (char === "?") source += "[\\s\\S]";
        else source += char.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    }
    return new RegExp(`^${source}$`, "u");
}

export class GlobSet {
    private readonly patterns: RegExp[];

    public constructor(globs: readonly string[]) {
        this.patterns = globs.map(globToRegExp);
    }

    public matches(value: string): boolean {
        return this.patterns.some((pattern) => pattern.test(value));
    }
}
