import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { pythonDumpsString } from "../../src/json/PythonJson.js";
import {
    canonicalV2,
    contentCommitment,
    contentSize,
    GENESIS,
    type LinkFieldsV2,
    recordHashV2,
} from "../../src/verify/Chain.js";

/**
 * README, "The hash chain": the version 2 worked example. synapse-module/tests/test_chain.py checks the same
 * vector against the host module's writer, so the two implementations cannot drift apart.
 */
const KEY = Buffer.from("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "hex");
const CHANGE_ID = "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5";
const CONTENT = '{"theme":"dark"}';
const SALT = "da7df9120cee81be92f619e6703e506f";
const COMMITMENT = "sha256:fd74ec66942baac169b813ae3088201415e3b9a67f623e533635f7ce3e4db951";
const KEYED_DIGEST = "633f26b4c9632cc7989ae15573f7ca39f44480d7700096a8c3984ef40676eca0";
const CANONICAL =
    '["v2",1,"5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5",1700000000000,"change","@alice:example.org",null,' +
    '"im.vector.setting.theme",16,"sha256:fd74ec66942baac169b813ae3088201415e3b9a67f623e533635f7ce3e4db951",' +
    '"hmac-sha256:633f26b4c9632cc7989ae15573f7ca39f44480d7700096a8c3984ef40676eca0",' +
    '"0000000000000000000000000000000000000000000000000000000000000000"]';
const HASH = "2f7aad7b0e2cc42f82eb3e173a41669c28694b7af639cd3f63be7bb779b0cc61";

const LINK: LinkFieldsV2 = {
    seq: 1,
    changeId: CHANGE_ID,
    ts: 1700000000000,
    kind: "change",
    userId: "@alice:example.org",
    roomId: null,
    type: "im.vector.setting.theme",
    contentSize: 16,
    commitment: COMMITMENT,
    keyedDigest: KEYED_DIGEST,
    prevHash: GENESIS,
};

describe("the chain's v2 canonical encoding (README's worked example)", () => {
    it("derives the salt and the keyed digest as the host module does (the verifier never can: no key)", () => {
        const salt = createHmac("sha256", KEY).update(`salt:${CHANGE_ID}`).digest("hex").slice(0, 32);
        expect(salt).toBe(SALT);
        const covered = `[${["@alice:example.org", null, "im.vector.setting.theme", CONTENT]
            .map((v) => (v === null ? "null" : pythonDumpsString(v)))
            .join(",")}]`;
        expect(covered).toBe('["@alice:example.org",null,"im.vector.setting.theme","{\\"theme\\":\\"dark\\"}"]');
        expect(createHmac("sha256", KEY).update(covered).digest("hex")).toBe(KEYED_DIGEST);
    });

    it("binds the content: size in UTF-8 bytes, commitment over salt then content", () => {
        expect(contentSize(CONTENT)).toBe(16);
        expect(contentCommitment(SALT, CONTENT)).toBe(COMMITMENT);
        expect(contentSize('{"n":"é☃"}')).toBe(13); // é is 2 bytes, ☃ 3
        expect(contentCommitment(SALT, '{"theme":"light"}')).not.toBe(COMMITMENT);
    });

    it("gives the README's canonical text and hash", () => {
        expect(canonicalV2(LINK)).toBe(CANONICAL);
        expect(recordHashV2(LINK)).toBe(HASH);
    });

    it("escapes non-ASCII like Python and writes absent fields as null", () => {
        const link: LinkFieldsV2 = {
            ...LINK,
            seq: 2,
            changeId: "c",
            ts: 5,
            kind: "recovered",
            userId: "@z:example.org",
            roomId: "!r:example.org",
            type: "é☃<x>",
            contentSize: 1,
            commitment: null,
            keyedDigest: null,
            prevHash: "3d",
        };
        // The same text synapse-module/tests/test_chain.py expects for this link.
        expect(canonicalV2(link)).toBe(
            '["v2",2,"c",5,"recovered","@z:example.org","!r:example.org","\\u00e9\\u2603<x>",1,null,null,"3d"]',
        );
        const checkpoint = { ...link, kind: "checkpoint", userId: "", roomId: null, type: "", contentSize: null };
        expect(canonicalV2(checkpoint)).toBe('["v2",2,"c",5,"checkpoint","",null,"",null,null,null,"3d"]');
    });
});
