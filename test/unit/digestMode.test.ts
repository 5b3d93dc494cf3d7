import { describe, expect, it } from "vitest";
import { ChangeProcessor } from "../../src/ingest/ChangeProcessor.js";
import { AuditModule, auditMessageBody } from "../../src/modules/AuditModule.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { type AccountDataChange, type AuditUnit, toUnits } from "../../src/modules/ModuleHost.js";
import { verifyEvents } from "../../src/verify/Verifier.js";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { change, setup } from "./moduleFakes.js";

const ALICE = "@alice:example.org";

function grouped(seq: number, group: number | null, type = "m.test"): AccountDataChange {
    return change(`c${seq}`, `{"n":${seq}}`, null, { seq, digestGroup: group, type });
}

describe("digest units", () => {
    it("groups consecutive changes of one digest group; other records stay alone", () => {
        const units = toUnits([
            grouped(1, null),
            grouped(2, 2),
            grouped(3, 2),
            grouped(4, 4),
            grouped(5, 4),
            grouped(6, null),
        ]);
        expect(units.map((u) => (u.kind === "digest" ? `${u.seq}-${u.lastSeq}` : String(u.seq)))).toEqual([
            "1",
            "2-3",
            "4-5",
            "6",
        ]);
    });

    it("gathers a digest group's changes when groups of different lanes interleave", () => {
        const units = toUnits([grouped(1, 1), grouped(2, 2), grouped(3, 1), grouped(4, null), grouped(5, 2)]);
        expect(units.map((u) => (u.kind === "digest" ? u.changes.map((c) => c.seq).join("+") : String(u.seq)))).toEqual(
            ["1+3", "2+5", "4"],
        );
        expect(units.map((u) => (u.kind === "digest" ? u.lastSeq : u.seq))).toEqual([3, 5, 4]);
    });

    it("acknowledges interleaved digests only where no digest crosses the point", async () => {
        const failing = new Set<number>();
        const processor = new ChangeProcessor({
            dispatch: async (unit) => {
                if (failing.has(unit.seq)) throw new Error("homeserver down");
            },
        });
        // seqs 1-6 from `at`: 1 alone, digest 2 (2, 4), digest 3 (3, 5), 6 alone.
        const batch = (at: number) =>
            [null, 2, 3, 2, 3, null].map((g, i) => grouped(at + i, g === null ? null : at + g - 1));
        expect(await processor.process(batch(1))).toMatchObject({ acknowledgedThrough: 6 });
        // Digest 3 fails: digest 2 went out, but acknowledging through its 4 would cut digest 3, and through 2
        // would cut digest 2 (its 4 would come back alone, as another event): only the change alone before them.
        failing.add(9);
        await expect(processor.process(batch(7))).rejects.toMatchObject({ processedThrough: 7 });
        failing.clear();
        failing.add(18);
        await expect(processor.process(batch(13))).rejects.toMatchObject({ processedThrough: 17 });
    });

    it("a module without a digest callback gets each change, in order", async () => {
        const { host } = setup();
        const seen: string[] = [];
        host.api.registerAccountDataCallbacks({
            onAccountDataUpdated: async (_u, _r, type, _c, info) => void seen.push(`${info.seq} ${type}`),
        });
        const [digest] = toUnits([grouped(2, 2, "a"), grouped(3, 2, "b")]);
        await host.dispatch(digest as AuditUnit);
        expect(seen).toEqual(["2 a", "3 b"]);
    });

    it("acknowledges through the digest's last change, and a failed digest is not acknowledged in part", async () => {
        let fail = false;
        const processor = new ChangeProcessor({
            dispatch: async (unit) => {
                if (fail && unit.kind === "digest") throw new Error("homeserver down");
            },
        });
        expect(await processor.process([grouped(1, null), grouped(2, 2), grouped(3, 2)])).toMatchObject({
            acknowledgedThrough: 3,
        });
        fail = true;
        await expect(processor.process([grouped(4, null), grouped(5, 5), grouped(6, 5)])).rejects.toMatchObject({
            processedThrough: 4,
        });
    });
});

describe("the audit module's digest message", () => {
    function post(
        changes: AccountDataChange[],
        rules: { types: string[]; level: "none" | "metadata" | "full" }[] = [],
    ) {
        const { host, sender } = setup();
        new AuditModule(
            {
                audit_room: "!audit:example.org",
                sender: "@audit:example.org",
                audit: { rules: rules.map((r) => ({ users: null, rooms: null, ...r })), secrets: "withhold" },
            },
            host.api,
        );
        return { done: host.dispatch(toUnits(changes)[0] as AuditUnit), sender };
    }

    it("has one line per posted change, each what the change alone would say, and their records", async () => {
        const { done, sender } = post(
            [grouped(1, 1), grouped(2, 1, "m.fully_read"), grouped(3, 1, "org.example.private")],
            [
                { types: ["m.fully_read"], level: "none" },
                { types: ["org.example.private"], level: "metadata" },
            ],
        );
        await done;
        const [event] = sender.sent;
        expect(String(event?.content.body).split("\n")).toEqual([
            auditMessageBody(ALICE, null, "m.test", '{"n": 1}'),
            expect.stringMatching(
                /for type org\.example\.private to: \[content withheld: 7 bytes, keyed digest [0-9a-f]{16}\]$/,
            ),
        ]);
        const record = event?.content[RECORD_KEY] as { kind: string; records: { seq: number; level: string }[] };
        expect(record.kind).toBe("digest");
        expect(record.records.map((r) => [r.seq, r.level])).toEqual([
            [1, "full"],
            [3, "metadata"],
        ]);
        expect(String(event?.content.formatted_body)).toMatch(/^<p>2 account-data changes:<\/p><ul><li>/);
        expect(event?.txnId).toBe("audit.c1.0.digest:1-3");
        // After the first, records leave out what the record before them says (verify fills it in).
        expect(Object.keys(record.records[1] as object)).not.toContain("kind");
    });

    it("posts nothing when the policy leaves out every change", async () => {
        const { done, sender } = post(
            [grouped(1, 1, "m.fully_read"), grouped(2, 1, "m.fully_read")],
            [{ types: ["m.fully_read"], level: "none" }],
        );
        await done;
        expect(sender.sent).toEqual([]);
    });

    it("leaves the HTML's and records' copies out to fit, and splits a digest that still cannot fit", async () => {
        const sized = (seq: number, bytes: number) =>
            change(`c${seq}`, JSON.stringify({ blob: "x".repeat(bytes) }), null, { seq, digestGroup: 1 });
        const fits = post([sized(1, 8_000), sized(2, 8_000), sized(3, 8_000)]);
        await fits.done;
        const one = fits.sender.sent[0]?.content as Record<string, unknown>;
        expect(fits.sender.sent).toHaveLength(1);
        expect(String(one.formatted_body)).toContain("too long to show here as well");
        expect(String(one.body).split("\n")).toHaveLength(3);

        // Long types cannot be cut: three of 8,000 characters cannot share an event (each is in the body, the HTML
        // and the record): halves [1, 2] (a digest, only its body and records) and [3] (a message of its own).
        const typed = (seq: number) =>
            change(`c${seq}`, "{}", null, { seq, digestGroup: 1, type: `t${seq}`.repeat(4_000) });
        const split = post([typed(1), typed(2), typed(3)]);
        await split.done;
        expect(split.sender.sent.map((s) => s.txnId)).toEqual(["audit.c1.0.digest:1-2", "audit.c1.0.digest:3-3"]);
        expect(String(split.sender.sent[0]?.content.body).split("\n")).toHaveLength(2);
        for (const sent of split.sender.sent) {
            expect(Buffer.byteLength(JSON.stringify(sent.content))).toBeLessThanOrEqual(60_000);
            expect(String(sent.content.body)).toMatch(/ to: \{\}$/);
        }

        // Contents too long to share an event whole are cut instead, each line saying so: still one event.
        const sizedBig = post([sized(1, 25_000), sized(2, 25_000), sized(3, 25_000)]);
        await sizedBig.done;
        expect(sizedBig.sender.sent.map((s) => s.txnId)).toEqual(["audit.c1.0.digest:1-3"]);
        expect(String(sizedBig.sender.sent[0]?.content.body)).toMatch(/showing \d+ of 25012 characters\]$/);
    });

    it("cuts the lines of large contents to keep a burst of them in one event, rather than one event each", async () => {
        const big = (seq: number) =>
            change(`c${seq}`, JSON.stringify({ seq, blob: "y".repeat(17_000) }), null, { seq, digestGroup: 1 });
        const burst = post(Array.from({ length: 8 }, (_, i) => big(i + 1)));
        await burst.done;
        expect(burst.sender.sent).toHaveLength(1);
        const event = burst.sender.sent[0]?.content as Record<string, unknown>;
        expect(Buffer.byteLength(JSON.stringify(event))).toBeLessThanOrEqual(60_000);
        const lines = String(event.body).split("\n");
        expect(lines).toHaveLength(8);
        for (const [i, text] of lines.entries()) {
            expect(
                text.startsWith(
                    `${ALICE} has changed their account data for type m.test to: {"seq": ${i + 1}, "blob": "yyy`,
                ),
            ).toBe(true);
            expect(text).toMatch(/y… \[content cut to fit in one event: showing \d+ of 17022 characters\]$/);
        }
        const records = (event[RECORD_KEY] as { records: Record<string, unknown>[] }).records;
        expect(records.every((r) => r.content === undefined && r.content_omitted === "too_large")).toBe(true);
    });
});

describe("verify and digests", () => {
    it("reads the records of a digest and checks its body line by line", async () => {
        const { host, sender } = setup();
        new AuditModule(
            { audit_room: "!a:example.org", sender: "@audit:example.org", audit: { rules: [], secrets: "withhold" } },
            host.api,
        );
        const chain = (seq: number) => ({
            prevHash: String(seq - 1).padStart(64, "0"),
            hash: String(seq).padStart(64, "0"),
        });
        const changes = [1, 2, 3].map((seq) => ({ ...grouped(seq, 1), chain: chain(seq) }));
        await host.dispatch(toUnits(changes)[0] as AuditUnit);
        const event = {
            event_id: "$d",
            type: "m.room.message",
            sender: "@audit:example.org",
            origin_server_ts: 0,
            content: sender.sent[0]?.content,
        } as RoomEvent;
        const report = verifyEvents([event], "@audit:example.org");
        expect(report.records).toBe(3);
        // Made-up hashes: the records' own hashes do not add up, but the body matches them.
        expect(report.problems.every((p) => p.kind === "hash_mismatch")).toBe(true);
        const tampered = { ...event, content: { ...event.content, body: "something else" } };
        expect(verifyEvents([tampered], "@audit:example.org").problems.map((p) => p.kind)).toContain("body_mismatch");
    });
});
