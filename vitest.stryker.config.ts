import { defineConfig } from "vitest/config";

// Stryker's test run (`npm run mutation`): the unit tests only, never e2e (they start Synapse). The e2e
// project is absent here rather than filtered, so no option can bring it back. builtPackage.test.ts checks
// lib/ (the build output, not the mutated sources) and is left out too.
export default defineConfig({
    test: {
        include: ["test/unit/**/*.test.ts"],
        exclude: ["test/unit/builtPackage.test.ts"],
        setupFiles: ["./src/quietDependencies.ts"],
        // Instrumented code runs many times slower (glob.test.ts's linear-time check takes seconds).
        testTimeout: 60_000,
        // Stryker switches mutants through a global, so modules need not load afresh for each run: without
        // isolation a mutant's run skips re-importing the bot SDK and the rest (several times faster).
        // Module-level (static) mutants would need a fresh load: stryker.config.json ignores them.
        isolate: false,
    },
});
