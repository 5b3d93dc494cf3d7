/**
 * `verify` against a fake homeserver: the requests each form makes (the auditor's own token, the admin's as_token
 * as the sender), finding the sender from the room, the report and exit codes, and `--state` (saved only after a
 * clean run, refused for another room or sender, read on from where the last run stopped).
 */
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import yaml from "js-yaml";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RoomEvent } from "../../src/devenv/MatrixHttp.js";
import { RECORD_KEY } from "../../src/modules/audit/Record.js";
import { runVerify } from "../../src/verify/VerifyCommand.js";
import { ALICE, chainOf, changeEvent, changeRecord, type Fields, message, SENDER } from "./trailFixtures.js";
import { captureOutput } from "./captureOutput.js";

const ROOM = "!audit:example.org";
const MESSAGES = `/_matrix/client/v3/rooms/${encodeURIComponent(ROOM)}/messages`;
const FILTER = JSON.stringify({ types: ["m.room.message", "m.room.redaction"], lazy_load_members: true });

interface Seen {
    method: string;
    path: string;
    query: Record<string, string>;
    auth: string | undefined;
}

/** A homeserver serving one room's events in pages of `pageSize`, recording each request. */
class RoomServer {
    public readonly seen: Seen[] = [];
    public events: RoomEvent[] = [];
    public pageSize = 1000;
    public url = "";
    private server: Server | null = null;

    public async start(): Promise<void> {
        this.server = createServer((req, res) => this.handle(req, res));
        await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    }

    public async stop(): Promise<void> {
        this.server?.closeAllConnections();
        await new Promise((resolve) => this.server?.close(resolve));
    }

    private handle(req: IncomingMessage, res: ServerResponse): void {
        const url = new URL(req.url ?? "", "http://x");
        const query = Object.fromEntries(url.searchParams);
        this.seen.push({ method: req.method ?? "", path: url.pathname, query, auth: req.headers.authorization });
        const send = (status: number, body: unknown) => {
            res.writeHead(status, { "Content-Type": "application/json" });
            res.end(JSON.stringify(body));
        };
        if (url.pathname === `/_matrix/client/v3/directory/room/${encodeURIComponent("#audit:example.org")}`) {
            return send(200, { room_id: ROOM });
        }
        if (url.pathname === MESSAGES) {
            const from = Number(query.from ?? "0");
            const chunk = this.events.slice(from, from + this.pageSize);
            return send(200, { chunk, end: String(from + chunk.length) });
        }
        const context = url.pathname.match(/\/rooms\/[^/]+\/context\/(.+)$/);
        if (context) {
            const index = this.events.findIndex((e) => e.event_id === decodeURIComponent(context[1] as string));
            return send(200, { end: String(index + 1) });
        }
        send(404, { errcode: "M_UNRECOGNIZED", error: "not here" });
    }
}

const page = (from?: string) => ({ dir: "f", limit: "1000", filter: FILTER, ...(from ? { from } : {}) });

describe("verify against a homeserver", () => {
    let hs: RoomServer;
    let dir: string;
    let out: string[];
    let err: string[];

    beforeEach(async () => {
        hs = new RoomServer();
        await hs.start();
        dir = await mkdtemp(join(tmpdir(), "verify-hs-"));
        ({ out, err } = captureOutput());
    });

    afterEach(async () => {
        vi.restoreAllMocks();
        await hs.stop();
    });

    const auditor = (...extra: string[]) => [
        "--homeserver",
        hs.url,
        "--access-token",
        "tok",
        "--room",
        "#audit:example.org",
        ...extra,
    ];

    it("as an auditor: resolves the alias, finds the sender from the first chained record, reads and reports INTACT", async () => {
        const [one, two] = chainOf(2) as [Fields, Fields];
        hs.events = [message("$plain", ALICE, "hello"), changeEvent(one), changeEvent(two)];
        expect(await runVerify(auditor("--max-age", "0"))).toBe(0);
        expect(hs.seen).toEqual([
            {
                method: "GET",
                path: `/_matrix/client/v3/directory/room/${encodeURIComponent("#audit:example.org")}`,
                query: {},
                auth: "Bearer tok",
            },
            // findSender's pass, then the verifier's (two pages: the second is empty).
            { method: "GET", path: MESSAGES, query: page(), auth: "Bearer tok" },
            { method: "GET", path: MESSAGES, query: page(), auth: "Bearer tok" },
            { method: "GET", path: MESSAGES, query: page("3"), auth: "Bearer tok" },
        ]);
        expect(err.join("")).toBe(
            `verify: audit records of ${SENDER} in ${ROOM}\nverify: read 3 events\nverify: read 3 events\n`,
        );
        expect(out.join("")).toBe(
            `Audit room ${ROOM}: 2 records, seq 1–2 (from the chain's first record), ` +
                "1970-01-01T00:16:41.000Z – 1970-01-01T00:16:42.000Z; newest record seq 2 at 1970-01-01T00:16:42.000Z; " +
                "0 seqs left out by the audit policy; 0 older messages without a hash chain (not checked).\nINTACT\n",
        );
    });

    it("takes --sender as given (no search), and exits 1 with the report as JSON on a gap and a stale trail", async () => {
        const [one, , three] = chainOf(3) as [Fields, Fields, Fields];
        hs.events = [changeEvent(one), changeEvent(three)];
        expect(await runVerify(auditor("--sender", SENDER, "--json"))).toBe(1);
        expect(hs.seen.filter((s) => s.path === MESSAGES).map((s) => s.query)).toEqual([page(), page("2")]);
        const report = JSON.parse(out.join("")) as Record<string, unknown>;
        expect(report).toMatchObject({ room_id: ROOM, sender: SENDER, intact: false, records: 2 });
        expect((report.problems as { kind: string; seq: number | null }[]).map((p) => [p.kind, p.seq])).toEqual([
            ["missing", 2],
            ["stale", 3],
        ]);
    });

    it("as another sender: reports the real sender's records as look-alikes, in text, exit 1", async () => {
        hs.events = chainOf(1).map((f) => changeEvent(f));
        expect(await runVerify(auditor("--sender", ALICE, "--max-age", "0"))).toBe(1);
        expect(out.join("")).toBe(
            `Audit room ${ROOM}: 0 records, seq -–- (none), ? – ?; 0 seqs left out by the audit policy; 0 older ` +
                "messages without a hash chain (not checked).\n" +
                `BROKEN: look_alike (event $s1): an audit-like message from ${SENDER}\n`,
        );
    });

    it("exits 2 when no event holds a chained record, naming --sender", async () => {
        hs.events = [message("$plain", ALICE, "hello")];
        expect(await runVerify(auditor())).toBe(2);
        expect(err.join("")).toBe(
            `verify: could not check the trail: No audit record with a hash chain in ${ROOM}: give --sender\n`,
        );
        expect(out).toEqual([]);
    });

    it("as an admin: reads as the sender with the registration's as_token", async () => {
        hs.events = chainOf(1).map((f) => changeEvent(f));
        const config = join(dir, "config.yaml");
        const registration = join(dir, "registration.yaml");
        await writeFile(
            config,
            yaml.dump({
                audit_room: ROOM,
                sender: SENDER,
                homeserver: { url: hs.url, server_name: "example.org" },
            }),
        );
        await writeFile(registration, yaml.dump({ as_token: "as-secret" }));
        expect(await runVerify(["-c", config, "-f", registration, "--max-age", "0"])).toBe(0);
        expect(hs.seen).toEqual([
            { method: "GET", path: MESSAGES, query: { ...page(), user_id: SENDER }, auth: "Bearer as-secret" },
            { method: "GET", path: MESSAGES, query: { ...page("1"), user_id: SENDER }, auth: "Bearer as-secret" },
        ]);
        expect(err.join("")).toMatch(new RegExp(`^verify: audit records of ${SENDER} in ${ROOM}\\n`));

        await writeFile(registration, yaml.dump({ hs_token: "x" }));
        expect(await runVerify(["-c", config, "-f", registration])).toBe(2);
        expect(err.at(-1)).toBe(`verify: could not check the trail: ${registration} has no as_token\n`);
    });

    it("--state: saves where a clean run stopped, reads on from there, and refuses another room's or sender's state", async () => {
        const one = changeRecord(1, null);
        const two = changeRecord(2, { seq: 1, hash: one.hash as string }, { ts: 1_001_000 + 120_000 });
        hs.events = [changeEvent(one), changeEvent(two)];
        const state = join(dir, "state.json");
        expect(await runVerify(auditor("--state", state, "--max-age", "0"))).toBe(0);
        const saved = JSON.parse(await readFile(state, "utf8")) as Record<string, unknown>;
        expect(saved).toEqual({
            version: expect.any(Number),
            room_id: ROOM,
            sender: SENDER,
            verified: { seq: 1, hash: one.hash, recent: { 1: one.hash } },
            after_event_id: "$s1",
            checked_after: [],
        });

        hs.seen.length = 0;
        expect(await runVerify(auditor("--state", state, "--max-age", "0"))).toBe(0);
        // The sender comes from the state (no search), and the read goes on after $s1.
        expect(hs.seen.map((s) => [s.path, s.query.from])).toEqual([
            [`/_matrix/client/v3/directory/room/${encodeURIComponent("#audit:example.org")}`, undefined],
            [`/_matrix/client/v3/rooms/${encodeURIComponent(ROOM)}/context/${encodeURIComponent("$s1")}`, undefined],
            [MESSAGES, "1"],
            [MESSAGES, "2"],
        ]);
        expect(out.at(-1)).toMatch(/\(continuing the last run\)/);

        await writeFile(state, JSON.stringify({ ...saved, room_id: "!other:example.org" }));
        expect(await runVerify(auditor("--state", state))).toBe(2);
        expect(err.at(-1)).toBe(`verify: could not check the trail: ${state} belongs to room !other:example.org\n`);
        await writeFile(state, JSON.stringify(saved));
        expect(await runVerify(auditor("--state", state, "--sender", ALICE))).toBe(2);
        expect(err.at(-1)).toBe(`verify: could not check the trail: ${state} belongs to sender ${SENDER}\n`);
    });

    it("--state: a run that is only stale still saves, and a saved state's checked events are skipped", async () => {
        const one = changeRecord(1, null);
        const two = changeRecord(2, { seq: 1, hash: one.hash as string }, { ts: 1_001_000 + 120_000 });
        hs.events = [changeEvent(one), changeEvent(two)];
        const state = join(dir, "stale.json");
        expect(await runVerify(auditor("--state", state))).toBe(1);
        expect(out.at(-1)).toMatch(/\nBROKEN: stale at seq 2: /);
        const saved = JSON.parse(await readFile(state, "utf8")) as Record<string, unknown>;
        expect(saved).toMatchObject({ verified: { seq: 1 }, after_event_id: "$s1" });

        // A conflicting copy of seq 2 that the last run checked already: skipped, so the trail is intact.
        const conflicting = changeEvent(changeRecord(2, { seq: 1, hash: one.hash as string }, { ts: 5 }), "$seen");
        hs.events = [changeEvent(one), conflicting, changeEvent(two)];
        await writeFile(state, JSON.stringify({ ...saved, checked_after: ["$seen"] }));
        expect(await runVerify(auditor("--state", state, "--max-age", "0"))).toBe(0);
        await writeFile(state, JSON.stringify(saved));
        expect(await runVerify(auditor("--state", state, "--max-age", "0"))).toBe(1);
    });

    it("finds the sender by the first message holding a chained record, and takes --max-age in seconds", async () => {
        const [one] = chainOf(1) as [Fields];
        const recent = changeRecord(1, null, { ts: Date.now() - 60_000 });
        hs.events = [
            {
                ...message("$red", "@redactor:example.org", ""),
                type: "m.room.redaction",
                content: { [RECORD_KEY]: one },
            },
            message("$old", "@old:example.org", "old", { version: 1, kind: "change", seq: 1 }),
            changeEvent(recent),
        ];
        // The other member's message carrying a record is a look-alike; the trail is recent enough.
        expect(await runVerify(auditor("--max-age", "3600", "--json"))).toBe(1);
        expect(err[0]).toBe(`verify: audit records of ${SENDER} in ${ROOM}\n`);
        const report = JSON.parse(out.join("")) as { problems: { kind: string; eventId: string }[] };
        expect(report.problems.map((p) => [p.kind, p.eventId])).toEqual([["look_alike", "$old"]]);
    });

    it("says a registration file without content has no as_token", async () => {
        const config = join(dir, "config.yaml");
        const registration = join(dir, "empty.yaml");
        await writeFile(
            config,
            yaml.dump({ audit_room: ROOM, sender: SENDER, homeserver: { url: hs.url, server_name: "example.org" } }),
        );
        await writeFile(registration, "");
        expect(await runVerify(["-c", config, "-f", registration])).toBe(2);
        expect(err.join("")).toBe(`verify: could not check the trail: ${registration} has no as_token\n`);
        expect(hs.seen).toEqual([]);
    });

    it("--state: a broken run leaves the state as it was", async () => {
        const one = changeRecord(1, null);
        const three = changeRecord(3, { seq: 2, hash: "0".repeat(64) }, { ts: 1_001_000 + 120_000 });
        hs.events = [changeEvent(one), changeEvent(three)];
        const state = join(dir, "state.json");
        expect(await runVerify(auditor("--state", state, "--max-age", "0"))).toBe(1);
        await expect(readFile(state, "utf8")).rejects.toThrow(/ENOENT/);
    });
});
