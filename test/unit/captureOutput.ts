/** A command's printed output, for tests of commands that write to stdout and stderr. */
import { vi } from "vitest";

/** Captures everything written to stdout and stderr from now on (vi.restoreAllMocks() ends it). */
export function captureOutput(): { out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((text) => out.push(String(text)) > 0);
    vi.spyOn(process.stderr, "write").mockImplementation((text) => err.push(String(text)) > 0);
    return { out, err };
}
