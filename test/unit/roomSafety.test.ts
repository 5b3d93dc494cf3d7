import { describe, expect, it } from "vitest";
import { roomProblems } from "../../src/matrix/RoomSafety.js";

const SENDER = "@audit:example.org";
const state = (type: string, content: Record<string, unknown>, stateKey = "") => ({
    type,
    state_key: stateKey,
    content,
});
const member = (user: string) => state("m.room.member", { membership: "join" }, user);

describe("audit room safety", () => {
    it("a private, unencrypted, local room where only the sender may redact is safe", () => {
        const safe = [
            state("m.room.join_rules", { join_rule: "invite" }),
            state("m.room.history_visibility", { history_visibility: "shared" }),
            state("m.room.power_levels", { users: { [SENDER]: 100, "@auditor:example.org": 50 }, redact: 100 }),
            member(SENDER),
            member("@auditor:example.org"),
        ];
        expect(roomProblems(safe, SENDER)).toEqual([]);
    });

    it("counts the creators of a room of version 12 or later as able to redact", () => {
        const v12 = [
            { ...state("m.room.create", { room_version: "12" }), sender: "@creator:example.org" },
            state("m.room.power_levels", { users: {}, redact: 50 }),
        ];
        expect(roomProblems(v12, SENDER).map((p) => p.detail)).toEqual([
            "users besides the sender may redact audit events (redact level 50): @creator:example.org (room creator)",
        ]);
    });

    it("names every problem", () => {
        const unsafe = [
            state("m.room.join_rules", { join_rule: "public" }),
            state("m.room.history_visibility", { history_visibility: "world_readable" }),
            state("m.room.encryption", { algorithm: "m.megolm.v1.aes-sha2" }),
            state("m.room.power_levels", { users: { [SENDER]: 100, "@admin:example.org": 100 } }),
            state("m.room.retention", { max_lifetime: 86_400_000 }),
            member(SENDER),
            member("@someone:elsewhere.org"),
        ];
        expect(roomProblems(unsafe, SENDER).map((p) => [p.code, p.detail])).toEqual([
            ["joinable", "anyone can join (join rule public)"],
            ["world_readable", "anyone can read it (history visibility world_readable)"],
            ["federated", "members from other servers read it: @someone:elsewhere.org"],
            ["encrypted", "it is encrypted, and the appservice posts without encryption"],
            [
                "redactors",
                "users besides the sender may redact audit events (redact level 50): @admin:example.org (100)",
            ],
            [
                "retention",
                "it has a retention policy (m.room.retention max_lifetime 86400000 ms): a homeserver with retention " +
                    "enabled purges older audit events, and verify then finds the trail cut",
            ],
        ]);
    });
});
