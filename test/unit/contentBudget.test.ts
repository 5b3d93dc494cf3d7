/** The budget of content read at once (ContentBudget): turns in arrival order, a large unit alone. */
import { describe, expect, it } from "vitest";
import { ContentBudget } from "../../src/ingest/ContentBudget.js";

/** Lets every settled promise's callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("ContentBudget", () => {
    it("lets units through while their contents fit, then in arrival order as contents are released", async () => {
        const budget = new ContentBudget(100);
        const first = await budget.take(60);
        const second = await budget.take(40);
        expect(budget.inUse).toBe(100);
        const order: string[] = [];
        const big = budget.take(70).then((release) => (order.push("big"), release));
        const small = budget.take(10).then((release) => (order.push("small"), release));
        await settle();
        expect(order).toEqual([]); // the small one does not pass the big one waiting before it
        second();
        await settle();
        expect(order).toEqual([]); // 40 free: not yet enough for the big one
        first();
        await settle();
        expect(order).toEqual(["big", "small"]);
        expect(budget.inUse).toBe(80);
        (await big)();
        (await small)();
        expect(budget.inUse).toBe(0);
    });

    it("gives a unit larger than the budget all of it, alone, and releasing twice frees once", async () => {
        const budget = new ContentBudget(100);
        const huge = await budget.take(10_000);
        expect(budget.inUse).toBe(100);
        let small = false;
        const next = budget.take(1).then((release) => ((small = true), release));
        await settle();
        expect(small).toBe(false);
        huge();
        huge();
        await settle();
        expect(small).toBe(true);
        expect(budget.inUse).toBe(1);
        (await next)();
        expect(budget.inUse).toBe(0);
    });

    it("never holds a small unit back, even behind large ones waiting", async () => {
        const budget = new ContentBudget(100, 10);
        await budget.take(100);
        let large = false;
        void budget.take(50).then(() => (large = true));
        const small = await budget.take(10); // resolves although the budget is taken and a large unit waits
        small();
        await settle();
        expect(large).toBe(false);
        expect(budget.inUse).toBe(100);
    });

    it("takes nothing for a unit without content", async () => {
        const budget = new ContentBudget(10);
        await budget.take(10);
        const none = await budget.take(0); // not blocked by a full budget with nobody waiting
        none();
        expect(budget.inUse).toBe(10);
    });
});
