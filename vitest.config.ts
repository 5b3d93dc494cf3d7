import { defineConfig } from "vitest/config";

// Runs before any test file loads the bot SDK: silences its dependency's DEP0060 warning (and only that).
const setupFiles = ["./src/quietDependencies.ts"];

export default defineConfig({
    test: {
        projects: [
            {
                test: {
                    name: "unit",
                    include: ["test/unit/**/*.test.ts"],
                    setupFiles,
                    // builtPackage.test.ts loads lib/: built first if any source is newer.
                    globalSetup: ["./test/unit/globalSetup.ts"],
                },
            },
            {
                test: {
                    name: "e2e",
                    include: ["test/e2e/**/*.test.ts"],
                    setupFiles,
                    globalSetup: ["./test/e2e/globalSetup.ts"],
                    // Each file starts its own Synapse; two cores cannot run several at once.
                    fileParallelism: false,
                    testTimeout: 180_000,
                    hookTimeout: 180_000,
                },
            },
        ],
    },
});
