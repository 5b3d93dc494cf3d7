/**
 * Before the unit tests: builtPackage.test.ts imports and runs lib/ (the build, as an admin's install loads it),
 * which `vitest run --project unit` alone would not build. If any source under src/ is newer than its build
 * output (or has none), lib/ is built first (`tsc -p tsconfig.build.json`, what `npm run build` runs), so those
 * tests never judge a stale build.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";

const ROOT = resolve(import.meta.dirname, "..", "..");
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");

/** Sources under src/ whose lib/ counterpart is missing or older. */
export async function staleSources(root = ROOT): Promise<string[]> {
    const stale: string[] = [];
    const walk = async (dir: string): Promise<void> => {
        for (const entry of await readdir(dir, { withFileTypes: true })) {
            const path = join(dir, entry.name);
            if (entry.isDirectory()) await walk(path);
            else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) {
                const built = join(root, "lib", relative(join(root, "src"), path)).replace(/\.ts$/, ".js");
                if (!existsSync(built) || (await stat(built)).mtimeMs < (await stat(path)).mtimeMs) {
                    stale.push(relative(root, path));
                }
            }
        }
    };
    await walk(join(root, "src"));
    return stale;
}

export default async function setup(): Promise<void> {
    const stale = await staleSources();
    if (stale.length === 0) return;
    process.stderr.write(`lib/ is older than ${stale.length} source(s) (${stale.slice(0, 3).join(", ")}…): building\n`);
    try {
        await promisify(execFile)(process.execPath, [TSC, "-p", "tsconfig.build.json"], { cwd: ROOT });
    } catch (err) {
        const { stdout = "", stderr = "" } = err as { stdout?: string; stderr?: string };
        throw new Error(`Building lib/ for builtPackage.test.ts failed:\n${stdout}${stderr}`, { cause: err });
    }
}
