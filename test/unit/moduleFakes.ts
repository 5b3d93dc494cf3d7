/** Fakes for module tests: a sender that records what would be sent, and changes as the host module sends them. */
import { createHmac } from "node:crypto";
import { type LosslessObject, parseLossless } from "../../src/json/LosslessJson.js";
import type { EventSender, SendRequest } from "../../src/matrix/EventSender.js";
import { EventTooLargeError } from "../../src/matrix/SendErrors.js";
import { type AccountDataChange, ModuleHost } from "../../src/modules/ModuleHost.js";

export class RecordingSender {
    public readonly sent: SendRequest[] = [];
    public tooLargeAbove = Infinity;
    /** An error to refuse a request with (as the homeserver would), or null to accept it. */
    public refuse: (req: SendRequest) => Error | null = () => null;
    public readonly refused: SendRequest[] = [];
    public async send(req: SendRequest): Promise<string> {
        if (Buffer.byteLength(JSON.stringify(req.content)) > this.tooLargeAbove) {
            this.refused.push(req);
            throw new EventTooLargeError("too large");
        }
        const refusal = this.refuse(req);
        if (refusal) {
            this.refused.push(req);
            throw refusal;
        }
        this.sent.push(req);
        return `$event${this.sent.length}`;
    }
}

/** The host module's keyed digest, with a test key. */
export function keyedDigest(contentJson: string): string {
    return createHmac("sha256", "test key").update(contentJson, "utf8").digest("hex");
}

export function change(
    id: string,
    content = "{}",
    roomId: string | null = null,
    overrides: Partial<AccountDataChange> = {},
): AccountDataChange {
    return {
        id,
        seq: 1,
        ts: 0,
        recovered: false,
        contentJson: content,
        keyedDigest: keyedDigest(content),
        chain: null,
        userId: "@alice:example.org",
        roomId,
        type: "m.test",
        content: parseLossless(content) as LosslessObject,
        ...overrides,
    };
}

export function setup(): { host: ModuleHost; sender: RecordingSender } {
    const sender = new RecordingSender();
    return { host: new ModuleHost("example.org", sender as unknown as EventSender), sender };
}
