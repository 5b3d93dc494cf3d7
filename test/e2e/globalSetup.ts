/**
 * Before the e2e suite: removes what an earlier run that was killed midway left behind (its PostgreSQL
 * databases and temporary directories), so runs do not pile up leftovers.
 */
import { readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dropLeftoverDatabases } from "../../src/devenv/Synapse.js";

/** Temporary directories older than this belong to no running test (a whole run takes minutes). */
const STALE_DIR_MS = 6 * 3600 * 1000;

export default async function setup(): Promise<void> {
    await dropLeftoverDatabases().catch(() => []); // PostgreSQL is optional for the SQLite half
    for (const name of await readdir(tmpdir())) {
        if (!name.startsWith("account-data-audit-")) continue;
        const path = join(tmpdir(), name);
        const { mtimeMs } = await stat(path);
        if (Date.now() - mtimeMs > STALE_DIR_MS) await rm(path, { recursive: true, force: true });
    }
}
