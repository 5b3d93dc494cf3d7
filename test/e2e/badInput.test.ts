/** Scenarios 6 and 7: bad requests get Matrix errors and post nothing; oversize content is cut, not stuck. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHANGES_PATH } from "../../src/ingest/Protocol.js";
import type { MatrixHttp } from "../../src/devenv/MatrixHttp.js";
import { createTestEnv, type TestEnv } from "../../src/devenv/TestEnv.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { DATABASE } from "./helpers.js";

const MAX_BODY = 256 * 1024;

describe(`bad input and oversize content (${DATABASE})`, () => {
    let env: TestEnv;
    let alice: MatrixHttp;
    let url: string;

    beforeAll(async () => {
        env = await createTestEnv({ database: DATABASE, appserviceConfig: { ingest: { max_body_bytes: MAX_BODY } } });
        alice = await env.newUser("alice");
        url = `http://127.0.0.1:${env.appservice.port}${CHANGES_PATH}`;
        await env.auditor.catchUp();
    });
    afterAll(async () => {
        await env?.tearDown();
    });

    const goodChange = {
        id: "abc123",
        seq: 1,
        ts: 1,
        user_id: "@mallory:audit.test",
        room_id: null,
        type: "m.forged",
        content: '{"forged":true}',
    };

    async function post(
        body: string,
        headers: Record<string, string>,
    ): Promise<{ status: number; json: Record<string, unknown> }> {
        const res = await fetch(url, {
            method: "POST",
            headers: { "Content-Type": "application/json", ...headers },
            body,
        });
        return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    }

    it.each([
        ["no token", {}, JSON.stringify({ changes: [goodChange] }), 401, "M_MISSING_TOKEN"],
        [
            "a wrong token",
            { Authorization: "Bearer wrong" },
            JSON.stringify({ changes: [goodChange] }),
            403,
            "M_UNKNOWN_TOKEN",
        ],
        ["malformed JSON", "auth", '{"changes": [', 400, "M_NOT_JSON"],
        [
            "an invalid user ID",
            "auth",
            JSON.stringify({ changes: [{ ...goodChange, user_id: "mallory" }] }),
            400,
            "M_BAD_JSON",
        ],
        [
            "an oversize body",
            "auth",
            JSON.stringify({ changes: [{ ...goodChange, content: `{"x":"${"a".repeat(MAX_BODY)}"}` }] }),
            413,
            "M_TOO_LARGE",
        ],
    ])("answers %s with the documented error", async (_name, headers, body, status, errcode) => {
        const auth =
            headers === "auth" ? { Authorization: `Bearer ${env.registration.getHomeserverToken()}` } : headers;
        const res = await post(body, auth as Record<string, string>);
        expect(res.status).toBe(status);
        expect(res.json.errcode).toBe(errcode);
    });

    it("names the bad field", async () => {
        const res = await post(JSON.stringify({ changes: [{ ...goodChange, room_id: "not-a-room" }] }), {
            Authorization: `Bearer ${env.registration.getHomeserverToken()}`,
        });
        expect(res.json).toMatchObject({ errcode: "M_BAD_JSON", field: "changes[0].room_id" });
    });

    it("posted nothing for the bad requests, and the next good change still arrives first", async () => {
        await alice.setAccountData("org.example.after_bad_input", '{"ok":true}');
        const [first] = await env.auditor.waitForMessages(1);
        expect(first?.content.body).toBe(
            `${alice.userId} has changed their account data for type org.example.after_bad_input to: {"ok": true}`,
        );
    });

    it("cuts content too large for one event, says so, and keeps the queue moving", async () => {
        const huge = `{"blob":"${"x".repeat(100_000)}"}`;
        await alice.setAccountData("org.example.huge", huge);
        await alice.setAccountData("org.example.after_huge", "{}");
        const cut = await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.huge"));
        const body = String(cut.content.body);
        expect(
            body.startsWith(
                `${alice.userId} has changed their account data for type org.example.huge to: {"blob": "xxxx`,
            ),
        ).toBe(true);
        expect(body).toMatch(/content cut to fit in one event: showing \d+ of 100012 characters\]$/);
        expect(Buffer.byteLength(body)).toBeLessThan(65_536);
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after_huge"));
    });

    it("posts a change over the host module's max_content_bytes quarantined, without reading its content", async () => {
        // Over the default cap (1 MiB) and over this appservice's max_body_bytes: the host module must leave the
        // content out itself (a 413 would mean it tried to send it).
        const huge = `{"blob":"${"z".repeat(1024 * 1024 + 1000)}"}`;
        await alice.setAccountData("org.example.over_cap", huge);
        await alice.setAccountData("org.example.after_over_cap", "{}");
        const notice = await env.auditor.waitForRoomEvent((e) =>
            String(e.content.body).includes("org.example.over_cap"),
        );
        expect(notice.content.msgtype).toBe("m.notice");
        expect(notice.content[RECORD_KEY]).toMatchObject({
            level: "quarantined",
            content_size: huge.length,
            quarantine: { reason: expect.stringContaining("max_content_bytes") },
        });
        expect(JSON.stringify(notice.content)).not.toContain("zzzz");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after_over_cap"));
        expect(env.synapse.logTail(400)).not.toContain("too large for the appservice");
        expect((await env.verify()).code).toBe(0);
    });

    it("posts a change too large for any request quarantined, with its size, and keeps the queue moving", async () => {
        const huge = `{"blob":"${"y".repeat(MAX_BODY + 10_000)}"}`;
        await alice.setAccountData("org.example.too_large_to_deliver", huge);
        await alice.setAccountData("org.example.after_too_large", "{}");
        const notice = await env.auditor.waitForRoomEvent((e) =>
            String(e.content.body).includes("org.example.too_large_to_deliver"),
        );
        expect(notice.content.msgtype).toBe("m.notice");
        expect(notice.content[RECORD_KEY]).toMatchObject({
            level: "quarantined",
            content_size: huge.length,
            quarantine: { reason: expect.stringContaining("too large to deliver") },
        });
        expect(JSON.stringify(notice.content)).not.toContain("yyyy");
        await env.auditor.waitForRoomEvent((e) => String(e.content.body).includes("org.example.after_too_large"));
        expect((await env.verify()).code).toBe(0);
    });
});
