/** The audit policy (Policy.ts): the first matching rule decides; encrypted secrets are withheld by default. */
import { describe, expect, it } from "vitest";
import { LosslessObject, parseLossless } from "../../src/json/LosslessJson.js";
import { AuditPolicy, type AuditPolicyConfig, isSecretStorageItem } from "../../src/modules/audit/Policy.js";

type Rule = AuditPolicyConfig["rules"][number];
const rule = (fields: Partial<Rule> & Pick<Rule, "types" | "level">): Rule => ({ users: null, rooms: null, ...fields });
const policy = (rules: Rule[], secrets: "withhold" | "post" = "withhold") => new AuditPolicy({ rules, secrets });
const object = (json: string) => parseLossless(json) as LosslessObject;

const FULL = { level: "full", withheldSecret: false };

describe("the audit policy", () => {
    it("records everything in full without rules", () => {
        expect(policy([]).decide("@a:x", null, "m.t")).toEqual(FULL);
    });

    it("takes the first rule that matches the type, user and room", () => {
        const p = policy([
            rule({ types: ["m.fully_read"], rooms: ["*"], level: "none" }),
            rule({ types: ["m.*"], users: ["@bot*"], level: "metadata" }),
            rule({ types: ["m.*"], level: "full" }),
            rule({ types: ["*"], level: "none" }),
        ]);
        expect(p.decide("@a:x", "!r:x", "m.fully_read").level).toBe("none");
        // Global m.fully_read: the first rule names rooms only.
        expect(p.decide("@a:x", null, "m.fully_read").level).toBe("full");
        expect(p.decide("@bot1:x", null, "m.t").level).toBe("metadata");
        expect(p.decide("@a:x", null, "m.t").level).toBe("full");
        expect(p.decide("@a:x", null, "other").level).toBe("none");
    });

    it('matches global account data by the room name "global", and rooms by their globs', () => {
        const p = policy([
            rule({ types: ["*"], rooms: ["global"], level: "metadata" }),
            rule({ types: ["*"], rooms: ["!secret*"], level: "none" }),
        ]);
        expect(p.decide("@a:x", null, "t").level).toBe("metadata");
        expect(p.decide("@a:x", "!secret1:x", "t").level).toBe("none");
        expect(p.decide("@a:x", "!other:x", "t").level).toBe("full");
        // "global" names global data, not a room that happens to be called so.
        expect(
            policy([rule({ types: ["*"], rooms: ["global"], level: "none" })]).decide("@a:x", "global", "t"),
        ).toEqual(FULL);
    });

    it("withholds encrypted secrets' contents, by type or by shape, unless told to post them", () => {
        const p = policy([]);
        for (const type of [
            "m.secret_storage.key.abc",
            "m.cross_signing.master",
            "m.megolm_backup.v1",
            "org.matrix.msc3814",
            "m.dehydrated_device",
        ]) {
            expect(p.decide("@a:x", null, type), type).toEqual({ level: "metadata", withheldSecret: true });
        }
        const item = object('{"encrypted": {"k1": {"ciphertext": "c", "mac": "m", "iv": "i"}}}');
        expect(p.decide("@a:x", null, "my.secret", item)).toEqual({ level: "metadata", withheldSecret: true });
        expect(policy([], "post").decide("@a:x", null, "m.megolm_backup.v1", item)).toEqual(FULL);
    });

    it("leaves a rule's lower level as it is for secrets", () => {
        const p = policy([rule({ types: ["m.cross_signing.*"], level: "none" })]);
        expect(p.decide("@a:x", null, "m.cross_signing.self")).toEqual({ level: "none", withheldSecret: false });
    });
});

describe("a secret-storage item", () => {
    it("is an object whose every encrypted entry has a ciphertext and a MAC", () => {
        expect(
            isSecretStorageItem(
                object('{"encrypted": {"a": {"ciphertext": "c", "mac": "m"}, "b": {"ciphertext": "d", "mac": "n"}}}'),
            ),
        ).toBe(true);
        expect(
            isSecretStorageItem(
                object('{"encrypted": {"a": {"ciphertext": "c", "mac": "m"}, "b": {"ciphertext": "d"}}}'),
            ),
        ).toBe(false);
        expect(isSecretStorageItem(object('{"encrypted": {"a": {"mac": "m"}}}'))).toBe(false);
        expect(isSecretStorageItem(object('{"encrypted": {"a": "text"}}'))).toBe(false);
        expect(isSecretStorageItem(object('{"encrypted": {}}'))).toBe(false);
        expect(isSecretStorageItem(object('{"encrypted": "x"}'))).toBe(false);
        expect(isSecretStorageItem(object("{}"))).toBe(false);
        expect(isSecretStorageItem(null)).toBe(false);
        expect(isSecretStorageItem(undefined)).toBe(false);
    });
});
