/** Scenario 1: what lands in the audit room, read by the auditor through /sync. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";

const DATABASE = process.env.AUDIT_E2E_DATABASE === "postgres" ? "postgres" : "sqlite";

describe(`audit messages (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;
    let aliceRoom: string;

    beforeAll(async () => {
        env = await createTestEnv({ database: DATABASE });
        alice = await env.newUser("alice");
        aliceRoom = await alice.createRoom({ name: "alice's room" });
        await env.auditor.catchUp();
    });
    afterAll(async () => {
        await env?.tearDown();
    });

    it("posts a global change with the seed's wording, byte for byte", async () => {
        // Raw JSON so JavaScript never touches the values: 1.0, a 64-bit integer, non-ASCII, U+2028.
        await alice.setAccountData(
            "org.example.settings",
            '{"theme":"dark","zoom":1.0,"big":18446744073709551615,"name":"Zoë 😀\u2028","list":[[1,[2]],{}]}',
        );
        const event = await env.auditor.waitForRoomEvent((e) =>
            String(e.content.body).includes("org.example.settings"),
        );
        expect(event.content).toMatchObject({
            msgtype: "m.text",
            body:
                `${alice.userId} has changed their account data for type org.example.settings to: ` +
                String.raw`{"theme": "dark", "zoom": 1.0, "big": 18446744073709551615, "name": "Zo\u00eb \ud83d\ude00\u2028", "list": [[1, [2]], {}]}`,
        });
        expect(event.sender).toBe(env.senderUserId);
    });

    it("adds the room suffix for room account data", async () => {
        await alice.setRoomAccountData(aliceRoom, "org.example.room_pref", '{"muted":true}');
        const event = await env.auditor.waitForRoomEvent((e) =>
            String(e.content.body).includes("org.example.room_pref"),
        );
        expect(event.content.body).toBe(
            `${alice.userId} has changed their account data for type org.example.room_pref to: {"muted": true} (in room ${aliceRoom})`,
        );
    });

    it("audits a type longer than 255 bytes (Synapse accepts it; nothing may hold up the queue)", async () => {
        const type = `org.example.${"long".repeat(80)}`;
        await alice.setAccountData(type, '{"ok":true}');
        const event = await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes(type));
        expect(event.content.body).toBe(
            `${alice.userId} has changed their account data for type ${type} to: {"ok": true}`,
        );
    });

    it("audits a deletion as {}", async () => {
        await alice.setAccountData("org.example.to_delete", '{"x":1}');
        // Matrix deletes account data by replacing it with {}.
        await alice.setAccountData("org.example.to_delete", "{}");
        const event = await env.auditor.waitForRoomEvent(
            (e) =>
                String(e.content.body) ===
                `${alice.userId} has changed their account data for type org.example.to_delete to: {}`,
        );
        expect(event).toBeDefined();
    });

    it("audits a read marker (m.fully_read)", async () => {
        const eventId = await alice.sendText(aliceRoom, "hello");
        await alice.setReadMarker(aliceRoom, eventId);
        const event = await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("m.fully_read"));
        expect(event.content.body).toBe(
            `${alice.userId} has changed their account data for type m.fully_read to: {"event_id": "${eventId}"} (in room ${aliceRoom})`,
        );
    });

    it("posts each change exactly once, in order", async () => {
        // Changes of its own, so that it passes alone too (-t); the room also holds the other tests'.
        await alice.setAccountData("org.example.order_first", "{}");
        await alice.setRoomAccountData(aliceRoom, "org.example.order_second", "{}");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.order_second"));
        const all = (await env.auditor.allMessages()).map((e) => String(e.content.body));
        expect(new Set(all).size).toBe(all.length);
        const first = all.findIndex((b) => b.includes("org.example.order_first"));
        const second = all.findIndex((b) => b.includes("org.example.order_second"));
        expect(first).toBeGreaterThanOrEqual(0);
        expect(second).toBeGreaterThan(first);
    });
});
