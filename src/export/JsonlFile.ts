/**
 * The file side of the JSONL export: finding where the file ends after a crash (its last complete line, a torn
 * line cut off), appending with one fdatasync per batch, and rotating by rename (log shippers follow files by
 * inode, so a rotated file keeps its inode and a new one is opened, never copy-truncate). Rotated files are named
 * `<path>.<last seq, 12 digits>`, so they sort in chain order and a start after a crash just behind a rotation
 * (new file still empty) finds its place in the newest rotated file.
 */
import { open, readdir, rename, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

const CHUNK = 64 * 1024;

/** The last complete line of an open file, after cutting off a torn one; `torn` is how many bytes were cut. */
export async function lastLine(handle: FileHandle, repair = true): Promise<{ line: string | null; torn: number }> {
    const size = (await handle.stat()).size;
    const chunks: Buffer[] = [];
    let torn = 0;
    let lineEnd: number | null = null;
    // Reads backwards until the start of the last complete line is in the chunks read.
    for (let pos = size; pos > 0;) {
        const start = Math.max(0, pos - CHUNK);
        const buf = Buffer.alloc(pos - start);
        await handle.read(buf, 0, buf.length, start);
        chunks.unshift(buf);
        const all = Buffer.concat(chunks);
        const base = start;
        if (lineEnd === null) {
            const nl = all.lastIndexOf(0x0a);
            if (nl !== -1) {
                lineEnd = base + nl;
                torn = size - lineEnd - 1;
            }
        }
        if (lineEnd !== null) {
            const from = lineEnd - base - 1;
            // (A negative offset would count from the end.)
            const before = from < 0 ? -1 : all.lastIndexOf(0x0a, from);
            if (before !== -1 || start === 0) {
                if (torn > 0 && repair) await cut(handle, lineEnd + 1);
                const text = all.subarray(before + 1, lineEnd - base).toString("utf8");
                return { line: text.length > 0 ? text : null, torn };
            }
        }
        pos = start;
    }
    // No newline at all: everything is one torn line.
    if (size > 0 && repair) await cut(handle, 0);
    return { line: null, torn: size };
}

async function cut(handle: FileHandle, length: number): Promise<void> {
    await handle.truncate(length);
    await handle.datasync();
}

export function rotatedName(path: string, lastSeq: number): string {
    return `${path}.${String(lastSeq).padStart(12, "0")}`;
}

/** Rotated files of `path`, oldest first. */
export async function rotatedFiles(path: string): Promise<string[]> {
    const prefix = `${basename(path)}.`;
    let names: string[];
    try {
        names = await readdir(dirname(path));
    } catch {
        return [];
    }
    return names
        .filter((n) => n.startsWith(prefix) && /^\d{12,}$/.test(n.slice(prefix.length)))
        .sort((a, b) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length)))
        .map((n) => join(dirname(path), n));
}

export interface FileOptions {
    path: string;
    /** Rotate before a batch once the file holds this many bytes (0: never). */
    rotateBytes: number;
    /** Rotate before a batch once the file is this old (0: never). */
    rotateSeconds: number;
    now?: () => number;
}

/** The export file, open for appending. */
export class JsonlFile {
    private handle: FileHandle | null = null;
    private size = 0;
    private createdAt = 0;

    public constructor(private readonly options: FileOptions) {}

    /** Opens the file and returns the last line the export holds (in it, or in the newest rotated file). */
    public async open(): Promise<{ line: string | null; torn: number }> {
        await this.close();
        const handle = await open(this.options.path, "a+");
        this.handle = handle;
        const found = await lastLine(handle);
        const info = await handle.stat();
        this.size = info.size;
        this.createdAt = info.size > 0 && info.birthtimeMs > 0 ? info.birthtimeMs : this.now();
        if (found.line !== null) return found;
        const rotated = (await rotatedFiles(this.options.path)).at(-1);
        if (rotated === undefined) return found;
        const old = await open(rotated, "r");
        try {
            // A rotated file was complete when it was renamed: it is read, never cut.
            return { line: (await lastLine(old, false)).line, torn: found.torn };
        } finally {
            await old.close();
        }
    }

    /** Appends `text` and syncs it to disk. */
    public async append(text: string): Promise<void> {
        const handle = this.requireOpen();
        const buf = Buffer.from(text, "utf8");
        for (let off = 0; off < buf.length;) {
            const { bytesWritten } = await handle.write(buf, off, buf.length - off);
            off += bytesWritten;
        }
        await handle.datasync();
        this.size += buf.length;
    }

    /** Renames the file (named after its last seq) and opens a new one, if it is due. */
    public async rotateIfDue(lastSeq: number): Promise<string | null> {
        const { rotateBytes, rotateSeconds, path } = this.options;
        if (this.size === 0) return null;
        const bySize = rotateBytes > 0 && this.size >= rotateBytes;
        const byAge = rotateSeconds > 0 && this.now() - this.createdAt >= rotateSeconds * 1000;
        if (!bySize && !byAge) return null;
        const target = rotatedName(path, lastSeq);
        if (await exists(target)) throw new Error(`Cannot rotate ${path}: ${target} exists already`);
        await rename(path, target);
        await this.close();
        this.handle = await open(path, "a+");
        // The new name and the new file must both survive a crash, or a restart would not find its place.
        await syncDir(dirname(path));
        this.size = 0;
        this.createdAt = this.now();
        return target;
    }

    public async close(): Promise<void> {
        const handle = this.handle;
        this.handle = null;
        await handle?.close();
    }

    private requireOpen(): FileHandle {
        if (!this.handle) throw new Error(`${this.options.path} is not open`);
        return this.handle;
    }

    private now(): number {
        return (this.options.now ?? Date.now)();
    }
}

async function exists(path: string): Promise<boolean> {
    return stat(path).then(
        () => true,
        () => false,
    );
}

async function syncDir(path: string): Promise<void> {
    const dir = await open(path, "r");
    try {
        await dir.sync();
    } finally {
        await dir.close();
    }
}
