import { MatrixClient } from "@vector-im/matrix-bot-sdk";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SenderDevice } from "../../src/matrix/SenderDevice.js";
import { FakeHomeserver } from "./fakeHomeserver.js";

const SENDER = "@audit:example.org";
const QS = "user_id=%40audit%3Aexample.org";

describe("the sender's device", () => {
    let hs: FakeHomeserver;
    let device: SenderDevice;

    beforeEach(async () => {
        hs = new FakeHomeserver();
        await hs.start();
        device = new SenderDevice(new MatrixClient(hs.url, "as_token"), SENDER, "AUDITDEV");
    });
    afterEach(async () => {
        await hs.stop();
    });

    const calls = (): string[] => hs.requests.map((r) => `${r.method} ${r.url}`);

    it("is created with PUT /devices and used once whoami names it", async () => {
        hs.script({ status: 200, body: {} }, { status: 200, body: { user_id: SENDER, device_id: "AUDITDEV" } });
        expect(await device.ensure()).toBe(true);
        expect(calls()).toEqual([
            `PUT /_matrix/client/v3/devices/AUDITDEV?${QS}`,
            `GET /_matrix/client/v3/account/whoami?${QS}&device_id=AUDITDEV`,
        ]);
        expect(hs.requests[0]?.body).toEqual({ display_name: "matrix-account-data-audit" });
        expect(device.queryFor(SENDER)).toEqual({ user_id: SENDER, device_id: "AUDITDEV" });
        expect(device.queryFor("@someone-else:example.org")).toBeNull();
    });

    it("falls back to the appservice login when PUT /devices is not supported, if the device is missing", async () => {
        hs.script(
            { status: 404, body: { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" } },
            { status: 404, body: { errcode: "M_NOT_FOUND", error: "No device found" } },
            { status: 200, body: { user_id: SENDER, device_id: "AUDITDEV", access_token: "unused" } },
            { status: 200, body: { user_id: SENDER, device_id: "AUDITDEV" } },
        );
        expect(await device.ensure()).toBe(true);
        expect(calls()[2]).toBe("POST /_matrix/client/v3/login");
        expect(hs.requests[2]?.body).toEqual({
            type: "m.login.application_service",
            identifier: { type: "m.id.user", user: SENDER },
            device_id: "AUDITDEV",
            initial_device_display_name: "matrix-account-data-audit",
        });
    });

    it("does not log in again (a new access token each time) when the device already exists", async () => {
        hs.script(
            { status: 404, body: { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" } },
            { status: 200, body: { device_id: "AUDITDEV" } },
            { status: 200, body: { user_id: SENDER, device_id: "AUDITDEV" } },
        );
        expect(await device.ensure()).toBe(true);
        expect(calls().some((c) => c.includes("/login"))).toBe(false);
    });

    it.each([
        [
            "the homeserver ignores device_id",
            [
                { status: 200, body: {} },
                { status: 200, body: { user_id: SENDER } },
            ],
        ],
        [
            "no way to create the device works",
            [
                { status: 404, body: { errcode: "M_UNRECOGNIZED", error: "no" } },
                { status: 404, body: { errcode: "M_UNRECOGNIZED", error: "no" } },
                { status: 400, body: { errcode: "M_UNKNOWN", error: "Unknown login type" } },
            ],
        ],
    ])("is not used when %s: sends go without a device", async (_name, answers) => {
        hs.script(...answers);
        expect(await device.ensure()).toBe(false);
        expect(device.queryFor(SENDER)).toBeNull();
    });
});
