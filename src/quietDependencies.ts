/**
 * Silences the one warning a dependency we cannot change prints whenever it is loaded: DEP0060 ("The
 * `util._extend` API is deprecated"), from `htmlencode`, which the bot SDK (@vector-im/matrix-bot-sdk, pinned
 * by matrix-appservice-bridge) requires at import time. Every other warning is printed as usual. Import this
 * module before anything that loads the bot SDK (first in every entry point).
 */
const SILENCED_CODES = new Set(["DEP0060"]);

const emitWarning = process.emitWarning.bind(process);

function warningCode(args: unknown[]): unknown {
    // emitWarning(warning, type, code, ctor) or emitWarning(warning, { type, code, detail })
    const [typeOrOptions, code] = args;
    return typeof typeOrOptions === "object" && typeOrOptions !== null
        ? (typeOrOptions as { code?: unknown }).code
        : code;
}

process.emitWarning = ((warning: string | Error, ...args: unknown[]) => {
    if (SILENCED_CODES.has(String(warningCode(args)))) return;
    (emitWarning as (warning: string | Error, ...rest: unknown[]) => void)(warning, ...args);
}) as typeof process.emitWarning;
