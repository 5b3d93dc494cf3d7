/**
 * The setup most e2e files share: every test gets a test environment of its own (a fresh Synapse, host module
 * and appservice), its auditor caught up with the audit room before the test starts, the diagnostics printed if
 * the test fails, and everything torn down after it.
 */
import { afterEach, beforeEach } from "vitest";
import { createTestEnv, type TestEnv, type TestEnvOptions } from "../../src/devenv/TestEnv.js";
import { reportOnFailure } from "./helpers.js";

/**
 * Registers the hooks in the enclosing `describe`. `use` receives each test's environment before the test
 * runs, so the file keeps it in a variable of its own: `envForEachTest(options, (created) => (env = created))`.
 */
export function envForEachTest(options: TestEnvOptions, use: (env: TestEnv) => void): void {
    let env: TestEnv | undefined;
    beforeEach(async ({ onTestFailed }) => {
        env = await createTestEnv(options);
        use(env);
        await env.auditor.catchUp();
        reportOnFailure(() => env, onTestFailed);
    });
    afterEach(async () => {
        await env?.tearDown();
    });
}
