// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
    {
        ignores: [
            "lib/",
            "node_modules/",
            ".venv/",
            ".venv-*/",
            "synapse-module/",
            "packages/crypto-stub/",
            "coverage/",
        ],
    },
    js.configs.recommended,
    ...tseslint.configs.recommended,
    {
        languageOptions: { globals: { process: "readonly", Buffer: "readonly", console: "readonly" } },
        rules: {
            // Output goes through the bridge's Logger (or process.stdout for CLI output), never console.
            "no-console": "error",
            "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
            eqeqeq: ["error", "always"],
        },
    },
);
