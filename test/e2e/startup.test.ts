/** Scenario 2: misconfiguration is refused at startup with a message that names the problem. */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SynapseHomeserver } from "../../src/devenv/Synapse.js";
import { createTestEnv, HOST_MODULE, type TestEnv } from "../../src/devenv/TestEnv.js";
import { DATABASE } from "./helpers.js";

describe(`startup checks (${DATABASE})`, () => {
    let env: TestEnv;

    beforeAll(async () => {
        env = await createTestEnv({ database: DATABASE, startAppservice: false });
    });
    afterAll(async () => {
        await env?.tearDown();
    });

    it.each(["audit_room", "sender"])("the appservice refuses to start without '%s'", async (key) => {
        const config = { ...env.appserviceConfig };
        delete config[key];
        await env.writeAppserviceConfig(config);
        const { code, output } = await env.appservice.runToExit();
        expect(code).toBe(1);
        expect(output).toContain(`Config error: '${key}' is required`);
    });

    it("the appservice names a wrong value's key path", async () => {
        await env.writeAppserviceConfig({ ...env.appserviceConfig, listen: { port: "eighty" } });
        const { code, output } = await env.appservice.runToExit();
        expect(code).toBe(1);
        expect(output).toContain("'listen.port' must be an integer");
    });

    it("the appservice tells the admin to invite the sender when it cannot join", async () => {
        const closedRoom = await env.auditor.http.createRoom({ preset: "private_chat" });
        await env.writeAppserviceConfig({ ...env.appserviceConfig, audit_room: closedRoom });
        const { code, output } = await env.appservice.runToExit();
        expect(code).toBe(1);
        expect(output).toContain(`Invite ${env.senderUserId} to the room`);
    });

    it("the appservice starts with the good config", async () => {
        await env.writeAppserviceConfig(env.appserviceConfig);
        await env.appservice.start();
        await env.appservice.stop();
    });

    it("Synapse refuses to start with a bad host-module config, naming the key", async () => {
        const synapse = new SynapseHomeserver({
            dir: join(env.dir, "bad-synapse"),
            modules: [{ module: HOST_MODULE, config: { appservice_url: "ftp://nowhere", token: "t" } }],
        });
        try {
            await synapse.writeConfig();
            const failure = await synapse.startExpectingFailure();
            expect(failure).toContain("appservice_url");
            expect(failure).toMatch(/'appservice_url' must be an http:\/\/ or https:\/\/ URL/);
        } finally {
            await synapse.destroy();
        }
    });
});
