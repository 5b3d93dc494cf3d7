"use strict";
// matrix-bot-sdk requires this package when it is imported, but only touches it when a crypto store is
// configured. The real package downloads a native library from GitHub at install time, which fails on
// air-gapped machines, so we replace it with this stand-in. Any real use fails loudly instead of silently.
function unsupported(name) {
    return new Proxy(function () {}, {
        get(_target, prop) {
            if (prop === "then" || typeof prop === "symbol") return undefined;
            throw new Error(
                `End-to-end encryption is not supported by matrix-account-data-audit (tried to use ${name}.${String(prop)}).`,
            );
        },
        construct() {
            throw new Error(
                `End-to-end encryption is not supported by matrix-account-data-audit (tried to construct ${name}).`,
            );
        },
        apply() {
            throw new Error(
                `End-to-end encryption is not supported by matrix-account-data-audit (tried to call ${name}).`,
            );
        },
    });
}
module.exports = {
    OlmMachine: unsupported("OlmMachine"),
    StoreType: { Sled: 0, Sqlite: 1 },
};
