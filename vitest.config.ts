import { defineConfig } from "vitest/config";

export default defineConfig({
    test: {
        projects: [
            {
                test: {
                    name: "unit",
                    include: ["test/unit/**/*.test.ts"],
                },
            },
            {
                test: {
                    name: "e2e",
                    include: ["test/e2e/**/*.test.ts"],
                    // Each file starts its own Synapse; two cores cannot run several at once.
                    fileParallelism: false,
                    testTimeout: 180_000,
                    hookTimeout: 180_000,
                },
            },
        ],
    },
});
