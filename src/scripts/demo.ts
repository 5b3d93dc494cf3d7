/**
 * `npm run demo`: a throwaway Synapse with the host module, the appservice, a user who changes some
 * account data, and the audit room printed as an auditor sees it. Everything is removed afterwards.
 */
import "../quietDependencies.js";
import type { RoomEvent } from "../devenv/MatrixHttp.js";
import { createTestEnv, type TestEnv } from "../devenv/TestEnv.js";
import { RECORD_KEY } from "../modules/audit/Record.js";

/** The demo's audit policy: read markers are not posted (a busy room would be mostly those). */
const AUDIT_POLICY = { rules: [{ types: ["m.fully_read"], level: "none" }] };

function say(line: string): void {
    process.stdout.write(`${line}\n`);
}

function describe(event: RoomEvent): string {
    const record = event.content[RECORD_KEY] as Record<string, unknown> | undefined;
    const facts = record
        ? `seq ${String(record.seq)}, level ${String(record.level)}, ${String(record.content_size)} bytes, ` +
          String(record.content_digest).slice(0, 28) +
          "…"
        : "no structured data";
    return `[${new Date(event.origin_server_ts).toISOString()}] ${event.sender}: ${String(event.content.body)}\n    (${facts})\n`;
}

async function demo(): Promise<void> {
    say("Starting a throwaway Synapse (SQLite, loopback only) with the host module, and the appservice...");
    let env: TestEnv | undefined;
    const stop = async (): Promise<void> => {
        await env?.tearDown();
    };
    process.once("SIGINT", () => void stop().then(() => process.exit(130)));
    try {
        env = await createTestEnv({ appserviceConfig: { audit: AUDIT_POLICY } });
        say(`Homeserver ${env.synapse.baseUrl}, audit room ${env.auditRoomId}, sender ${env.senderUserId}`);
        say(`Audit policy: ${JSON.stringify(AUDIT_POLICY)}; secrets withheld (the default)`);
        await env.auditor.catchUp();

        const alice = await env.newUser("alice");
        const room = await alice.createRoom({ name: "Alice's notes" });
        say(`\n${alice.userId} changes some account data:`);
        const steps: [string, () => Promise<unknown>][] = [
            ["sets global m.direct", () => alice.setAccountData("m.direct", `{"@bob:audit.test":["${room}"]}`)],
            [
                "sets a client setting",
                () => alice.setAccountData("im.vector.setting.theme", '{"theme":"dark","scale":1.0}'),
            ],
            [
                "sets room account data",
                () => alice.setRoomAccountData(room, "org.example.pinned", '{"pinned":["note 1","café ☕"]}'),
            ],
            ["deletes the client setting (writes {})", () => alice.setAccountData("im.vector.setting.theme", "{}")],
            [
                "moves her read marker (the policy says none: no message)",
                async () => alice.setReadMarker(room, await alice.sendText(room, "hello")),
            ],
            [
                "sets up secret storage (a secret: only its size and keyed digest are shown)",
                () =>
                    alice.setAccountData(
                        "m.secret_storage.key.demo",
                        '{"algorithm":"m.secret_storage.v1.aes-hmac-sha2","passphrase":{"algorithm":"m.pbkdf2",' +
                            '"salt":"r4nd0m","iterations":500000},"iv":"aXY=","mac":"bWFj"}',
                    ),
            ],
        ];
        const posted = steps.length - 1;
        for (const [what, step] of steps) {
            await step();
            say(`  - ${what}`);
        }

        const messages = await env.auditor.waitForMessages(posted, 60_000);
        say(`\nThe audit room, as the auditor (${env.auditor.http.userId}) reads it (body, then structured data):\n`);
        for (const event of messages) say(describe(event));
        const last = messages.at(-1);
        if (last) say(`The last message's HTML (formatted_body):\n  ${String(last.content.formatted_body)}`);
        say("\nShutting everything down.");
    } finally {
        await stop();
    }
}

demo().then(
    () => process.exit(0),
    (err: unknown) => {
        process.stderr.write(`Demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exit(1);
    },
);
