/**
 * Large contents are read without building their values (ContentReader, LazyContent): what the room shows of them
 * (their dump), whether they are secrets, and their values when asked for, all as a full read gives them.
 */
import { describe, expect, it } from "vitest";
import { LARGE_CONTENT_CHARS, readContent, UNREAD_CONTENT } from "../../src/ingest/ContentReader.js";
import { LazyContent, pythonDumpsContent } from "../../src/json/LazyContent.js";
import { parseLossless, type LosslessObject } from "../../src/json/LosslessJson.js";
import { pythonDumps, pythonDumpsCompactText } from "../../src/json/PythonJson.js";
import { AuditPolicy, isSecretStorageItem } from "../../src/modules/audit/Policy.js";
import type { AccountDataChange } from "../../src/modules/ModuleHost.js";

/** Text as Python's json.dumps(separators=(",", ":")) writes it (the host module's encoding). */
const TRICKY =
    '{"a:b,c":"x\\"y,z:\\\\","n":[1,-2.5,1e+16,1.0,12345678901234567890],' +
    '"u":"\\u00e9\\ud83d\\ude00\\n","o":{"":{},"k":[[],null,true,false]}}';

function change(contentJson: string): AccountDataChange {
    return {
        id: "c",
        seq: 1,
        ts: 0,
        recovered: false,
        userId: "@u:x",
        roomId: null,
        type: "m.t",
        contentJson,
        content: UNREAD_CONTENT,
        keyedDigest: null,
        chain: null,
    } as unknown as AccountDataChange;
}

function large(extra: string): string {
    const pad = "0,".repeat(LARGE_CONTENT_CHARS / 2);
    return `{"pad":[${pad}0],${extra}}`;
}

describe("large contents", () => {
    it("dump from their text as from their values", () => {
        expect(pythonDumpsCompactText(TRICKY)).toBe(pythonDumps(parseLossless(TRICKY)));
        const text = large(TRICKY.slice(1, -1));
        expect(pythonDumpsCompactText(text)).toBe(pythonDumps(parseLossless(text)));
    });

    it("are read lazily over the size, fully under it", () => {
        const small = readContent(change(TRICKY)).content;
        expect(small).not.toBeInstanceOf(LazyContent);
        const text = large('"k":1.0');
        const read = readContent(change(text));
        expect(read.content).toBeInstanceOf(LazyContent);
        expect(pythonDumpsContent(read.content)).toBe(pythonDumps(parseLossless(text)));
        // Whoever asks for the values gets them all, exactly.
        expect(pythonDumps(read.content)).toBe(pythonDumps(parseLossless(text)));
        expect([...read.content.entries.keys()]).toEqual(["pad", "k"]);
    });

    it("are withheld as secrets as a full read would withhold them", () => {
        const secret = large('"encrypted":{"key1":{"iv":"a","ciphertext":"b","mac":"c"}}');
        const notSecret = large('"encrypted":{"key1":{"iv":"a","ciphertext":"b"}}');
        const policy = new AuditPolicy({ rules: [], secrets: "withhold" });
        for (const [text, expected] of [
            [secret, true],
            [notSecret, false],
        ] as const) {
            const content = readContent(change(text)).content;
            expect(isSecretStorageItem(content)).toBe(expected);
            expect(isSecretStorageItem(parseLossless(text) as LosslessObject)).toBe(expected);
            expect(policy.decide("@u:x", null, "org.example.t", content).level).toBe(expected ? "metadata" : "full");
        }
    });

    it("that cannot be read are quarantined, as small ones", () => {
        expect(readContent(change(large('"k":')))).toMatchObject({ contentError: /not valid JSON/ });
        expect(readContent(change(`[${"0,".repeat(LARGE_CONTENT_CHARS)}0]`))).toMatchObject({
            contentError: "the content is not the JSON text of an object",
        });
    });
});
