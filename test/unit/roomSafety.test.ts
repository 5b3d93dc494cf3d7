import { describe, expect, it } from "vitest";
import { roomProblems } from "../../src/matrix/RoomSafety.js";

const SENDER = "@audit:example.org";
const state = (type: string, content: Record<string, unknown>, stateKey = "") => ({
    type,
    state_key: stateKey,
    content,
});
const member = (user: string, membership = "join") => state("m.room.member", { membership }, user);
const codes = (problems: { code: string }[]) => problems.map((p) => p.code);

describe("audit room safety", () => {
    it("a private, unencrypted, local room where only the sender may redact or post is safe", () => {
        const safe = [
            state("m.room.join_rules", { join_rule: "invite" }),
            state("m.room.history_visibility", { history_visibility: "shared" }),
            state("m.room.power_levels", {
                users: { [SENDER]: 100, "@auditor:example.org": 50 },
                redact: 100,
                events_default: 51,
            }),
            member(SENDER),
            member("@auditor:example.org"),
        ];
        expect(roomProblems(safe, SENDER)).toEqual([]);
    });

    it("counts the creators of a room of version 12 or later as able to redact", () => {
        const v12 = [
            { ...state("m.room.create", { room_version: "12" }), sender: "@creator:example.org" },
            state("m.room.power_levels", { users: {}, redact: 50, events_default: 100 }),
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
            state("m.room.power_levels", { users: { [SENDER]: 100, "@admin:example.org": 100 }, events_default: 100 }),
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

    it("warns when members cannot read what was posted before they joined or were invited", () => {
        for (const visibility of ["joined", "invited"]) {
            const problems = roomProblems(
                [state("m.room.history_visibility", { history_visibility: visibility })],
                SENDER,
            );
            expect(codes(problems)).toEqual(["history_hidden"]);
            expect(problems[0]?.detail).toContain(`(history visibility ${visibility})`);
        }
        for (const visibility of ["shared", "world_readable"]) {
            const problems = roomProblems(
                [state("m.room.history_visibility", { history_visibility: visibility })],
                SENDER,
            );
            expect(codes(problems)).not.toContain("history_hidden");
        }
    });

    it("names the members besides the sender who may post, joined or invited, at the level for m.room.message", () => {
        const room = (levels: Record<string, unknown>) => [
            state("m.room.power_levels", { redact: 100, ...levels }),
            member(SENDER),
            member("@auditor:example.org"),
            member("@invited:example.org", "invite"),
            member("@gone:example.org", "leave"),
        ];
        // events_default 0 (Synapse's default): every member may post.
        expect(roomProblems(room({ users: { [SENDER]: 100 } }), SENDER)).toEqual([
            {
                code: "posters",
                detail:
                    "members besides the sender may post messages (level 0 for m.room.message), and an audit-looking " +
                    "one would fail verify as a look-alike: @auditor:example.org (0), @invited:example.org (0)",
            },
        ]);
        // Above the auditors' level: only a member raised to it may post.
        const raised = room({ users: { [SENDER]: 100, "@auditor:example.org": 50 }, events_default: 50 });
        expect(roomProblems(raised, SENDER).map((p) => p.detail)).toEqual([
            expect.stringMatching(/level 50 for m\.room\.message.*: @auditor:example\.org \(50\)$/),
        ]);
        // A level of m.room.message's own overrides events_default, both ways.
        const own = room({ users: { [SENDER]: 100 }, events_default: 100, events: { "m.room.message": 0 } });
        expect(codes(roomProblems(own, SENDER))).toEqual(["posters"]);
        const closed = room({ users: { [SENDER]: 100 }, events_default: 0, events: { "m.room.message": 100 } });
        expect(roomProblems(closed, SENDER)).toEqual([]);
    });

    it("counts a room creator (room version 12) as able to post", () => {
        const v12 = [
            { ...state("m.room.create", { room_version: "12" }), sender: "@creator:example.org" },
            state("m.room.power_levels", { users: {}, redact: 100, events_default: 100 }),
            member("@creator:example.org"),
        ];
        expect(roomProblems(v12, SENDER).find((p) => p.code === "posters")?.detail).toMatch(
            /@creator:example\.org \(room creator\)$/,
        );
    });
});
