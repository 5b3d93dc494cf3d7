/**
 * A large content read without building its values (see ContentReader): its Python dump computed from its text
 * in one pass, whether it is a secret-storage item decided from a plain parse, and its lossless values built only
 * if something asks for them (a module of another kind may; the audit module does not).
 */
import { LosslessObject, type LosslessValue, parseLossless } from "./LosslessJson.js";
import { pythonDumps } from "./PythonJson.js";

export class LazyContent extends LosslessObject {
    private read = false;

    public constructor(
        private readonly text: string,
        /** `json.dumps` of the content (see pythonDumpsCompactText). */
        public readonly dumped: string,
        /** Whether the content is a secret-storage item (see isSecretStorageItem). */
        public readonly secretStorageItem: boolean,
    ) {
        super();
    }

    public override get entries(): Map<string, LosslessValue> {
        if (!this.read) {
            this.read = true;
            const value = parseLossless(this.text);
            if (value instanceof LosslessObject) for (const [key, item] of value.entries) this.map.set(key, item);
        }
        return this.map;
    }
}

/** `json.dumps` of a content: computed already for a large one, else from its values. */
export function pythonDumpsContent(content: LosslessObject): string {
    return content instanceof LazyContent ? content.dumped : pythonDumps(content);
}
