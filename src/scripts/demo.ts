/**
 * `npm run demo`: a throwaway Synapse with the host module, the appservice, a user who changes some
 * account data, and the audit room printed as an auditor sees it. Everything is removed afterwards.
 */
import "../quietDependencies.js";
import { createTestEnv, type TestEnv } from "../devenv/TestEnv.js";

function say(line: string): void {
    process.stdout.write(`${line}\n`);
}

async function demo(): Promise<void> {
    say("Starting a throwaway Synapse (SQLite, loopback only) with the host module, and the appservice...");
    let env: TestEnv | undefined;
    const stop = async (): Promise<void> => {
        await env?.tearDown();
    };
    process.once("SIGINT", () => void stop().then(() => process.exit(130)));
    try {
        env = await createTestEnv();
        say(`Homeserver ${env.synapse.baseUrl}, audit room ${env.auditRoomId}, sender ${env.senderUserId}`);
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
            ["moves her read marker", async () => alice.setReadMarker(room, await alice.sendText(room, "hello"))],
        ];
        for (const [what, step] of steps) {
            await step();
            say(`  - ${what}`);
        }

        const messages = await env.auditor.waitForMessages(steps.length, 60_000);
        say(`\nThe audit room, as the auditor (${env.auditor.http.userId}) reads it:\n`);
        for (const event of messages) {
            say(`[${new Date(event.origin_server_ts).toISOString()}] ${event.sender}: ${String(event.content.body)}`);
        }
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
