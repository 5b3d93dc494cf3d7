/** `verify --state FILE`: the state file's round trip, its wire form, and what is refused as not a state file. */
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadState, saveState, type VerifyState } from "../../src/verify/VerifyState.js";

const STATE: VerifyState = {
    roomId: "!audit:x",
    sender: "@audit:x",
    verified: { seq: 15, hash: "ab".repeat(32), recent: { "14": "cd".repeat(32), "15": "ab".repeat(32) } },
    afterEventId: "$15",
    checkedAfter: ["$16", "$17"],
};

const VALID = {
    version: 1,
    room_id: "!audit:x",
    sender: "@audit:x",
    verified: { seq: 3, hash: "h", recent: {} },
    after_event_id: null,
    checked_after: [],
};

async function dir(): Promise<string> {
    return mkdtemp(join(tmpdir(), "verify-state-"));
}

describe("the verify state file", () => {
    it("is read back as it was written, and holds the documented fields", async () => {
        const path = join(await dir(), "state.json");
        await saveState(path, STATE);
        expect(await loadState(path)).toEqual(STATE);
        expect(JSON.parse(await readFile(path, "utf8"))).toEqual({
            version: 1,
            room_id: "!audit:x",
            sender: "@audit:x",
            verified: STATE.verified,
            after_event_id: "$15",
            checked_after: ["$16", "$17"],
        });
    });

    it("is written through a temporary file that does not stay behind", async () => {
        const where = await dir();
        await saveState(join(where, "state.json"), STATE);
        await saveState(join(where, "state.json"), { ...STATE, afterEventId: null });
        expect(await readdir(where)).toEqual(["state.json"]);
        expect((await loadState(join(where, "state.json")))?.afterEventId).toBeNull();
    });

    it("does not exist yet: null", async () => {
        expect(await loadState(join(await dir(), "none.json"))).toBeNull();
    });

    it("cannot be read for another reason than its absence: that error", async () => {
        await expect(loadState(await dir())).rejects.toMatchObject({ code: "EISDIR" });
    });

    it("keeps only the event IDs among the checked events", async () => {
        const path = join(await dir(), "s.json");
        await writeFile(path, JSON.stringify({ ...VALID, checked_after: ["$a", 5, null, "$b"] }));
        expect((await loadState(path))?.checkedAfter).toEqual(["$a", "$b"]);
    });

    it.each([
        ["another version", { version: 2 }],
        ["no room", { room_id: 5 }],
        ["no sender", { sender: null }],
        ["no position", { verified: undefined }],
        ["a position without a seq", { verified: { seq: "3", hash: "h", recent: {} } }],
        ["a position without a hash", { verified: { seq: 3, hash: 1, recent: {} } }],
        ["a position without recent hashes", { verified: { seq: 3, hash: "h", recent: "x" } }],
        ["an event that is not an ID", { after_event_id: 7 }],
        ["checked events that are not a list", { checked_after: "$a" }],
    ])("is refused when it has %s", async (_what, change) => {
        const path = join(await dir(), "s.json");
        await writeFile(path, JSON.stringify({ ...VALID, ...change }));
        await expect(loadState(path)).rejects.toThrow(`${path} is not a verify state file`);
    });
});
