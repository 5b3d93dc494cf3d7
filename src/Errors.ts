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

/**
 * Every problem found in one configuration, so an admin fixes them in one go; the message lists them, one per
 * line. `unknownKeys` are the keys that would be ignored (reported as warnings, not errors).
 */
export class InvalidConfigError extends ConfigError {
    public constructor(
        public readonly problems: readonly ConfigError[],
        public readonly unknownKeys: readonly string[] = [],
    ) {
        super(problems[0]?.path ?? "", problems.map((p) => p.message).join("\n"));
        this.name = "InvalidConfigError";
    }
}

/** Startup cannot go on; the message says what the admin should do. */
export class StartupError extends Error {
    public constructor(message: string, options?: ErrorOptions) {
        super(message, options);
        this.name = "StartupError";
    }
}
