import { expect } from "vitest";
import type { MatrixHttp, RoomEvent } from "../../src/devenv/MatrixHttp.js";
import type { TestEnv } from "../../src/devenv/TestEnv.js";

export const DATABASE = process.env.AUDIT_E2E_DATABASE === "postgres" ? "postgres" : "sqlite";

export const COUNTER_TYPE = "org.example.counter";

/** Registers `count` users named `${prefix}0..N`. */
export async function newUsers(env: TestEnv, prefix: string, count: number): Promise<MatrixHttp[]> {
    return Promise.all(Array.from({ length: count }, (_, i) => env.newUser(`${prefix}${i}`)));
}

/**
 * Every user writes `perUser` changes `{"n": 0..perUser-1}` one after another; users run concurrently.
 * `onProgress` is told the total so far.
 */
export async function burst(users: MatrixHttp[], perUser: number, onProgress?: (done: number) => void): Promise<void> {
    let done = 0;
    await Promise.all(
        users.map(async (user) => {
            for (let n = 0; n < perUser; n++) {
                await user.setAccountData(COUNTER_TYPE, `{"n":${n}}`);
                onProgress?.(++done);
            }
        }),
    );
}

const COUNTER_BODY = new RegExp(
    `^(@[^ ]+) has changed their account data for type ${COUNTER_TYPE} to: \\{"n": (\\d+)\\}$`,
);

/** Checks that the counter messages are exactly users × 0..perUser-1, each user's in order, none twice. */
export function expectAllInOrderOnce(events: RoomEvent[], users: MatrixHttp[], perUser: number): void {
    const seen = new Map<string, number[]>();
    for (const event of events) {
        const match = COUNTER_BODY.exec(String(event.content.body));
        if (!match) continue;
        const list = seen.get(match[1] as string) ?? [];
        list.push(Number(match[2]));
        seen.set(match[1] as string, list);
    }
    const expected = Array.from({ length: perUser }, (_, n) => n);
    for (const user of users) {
        expect(seen.get(user.userId), user.userId).toEqual(expected);
    }
}

export { outboxDepth } from "../../src/devenv/TestEnv.js";
