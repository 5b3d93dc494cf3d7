import { describe, expect, it } from "vitest";
import { isLeftoverDatabase, newDatabaseName } from "../../src/devenv/Synapse.js";

describe("test databases", () => {
    it("are left to the run that made them while it may still be live, and cleared once old", () => {
        const now = Date.UTC(2026, 10, 29, 5, 0, 0);
        const name = newDatabaseName(now);
        expect(name).toMatch(/^audit_test_[0-9a-z]+_[0-9a-f]{8}$/);
        expect(isLeftoverDatabase(name, now + 60_000)).toBe(false);
        expect(isLeftoverDatabase(name, now + 2 * 3600_000)).toBe(false);
        expect(isLeftoverDatabase(name, now + 4 * 3600_000)).toBe(true);
        // Names from before the time was in them count as old; other names are never touched by the pattern.
        expect(isLeftoverDatabase("audit_test_0123456789ab", now)).toBe(true);
        expect(isLeftoverDatabase("audit_test_x; DROP", now)).toBe(false);
    });
});
