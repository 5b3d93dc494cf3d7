/**
 * A problem with the configuration. `path` names the key (dotted, e.g. `homeserver.url`); `message` is
 * shown to the admin as it is, so for a missing key it reads exactly like Synapse's example module:
 * `'audit_room' is required`.
 */
export class ConfigError extends Error {
    public constructor(
        public readonly path: string,
        message: string,
    ) {
        super(message);
        this.name = "ConfigError";
    }
}

/** Startup cannot go on; the message says what the admin should do. */
export class StartupError extends Error {
    public constructor(message: string, options?: ErrorOptions) {
        super(message, options);
        this.name = "StartupError";
    }
}
