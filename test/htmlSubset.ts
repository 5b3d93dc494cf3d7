import { expect } from "vitest";

/** The tags of the Matrix spec's HTML subset that audit messages use, and the only attributes they carry. */
const ALLOWED_TAGS = new Set(["p", "a", "code", "pre", "details", "summary", "em", "strong", "ul", "li"]);

/** Fails unless `html` uses only those tags, links only to matrix.to, and marks code only as JSON. */
export function expectSafeHtml(html: string): void {
    for (const [, tag, attributes] of html.matchAll(/<\/?([a-zA-Z0-9]+)([^>]*)>/g)) {
        expect(ALLOWED_TAGS.has(String(tag)), `tag <${tag}>`).toBe(true);
        for (const [, name, value] of String(attributes).matchAll(/([a-z-]+)="([^"]*)"/g)) {
            if (name === "href") expect(value).toMatch(/^https:\/\/matrix\.to\/#\//);
            else expect([name, value]).toEqual(["class", "language-json"]);
        }
        expect(
            String(attributes)
                .replace(/([a-z-]+)="([^"]*)"/g, "")
                .trim(),
        ).toBe("");
    }
}
