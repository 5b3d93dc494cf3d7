/**
 * The appservice's configuration: one schema gives its type, validation, defaults and config.sample.yaml.
 */
import { ConfigError, InvalidConfigError } from "../Errors.js";
import { isServerName } from "../matrix/Identifiers.js";
import { auditModuleSchema } from "./AuditModuleConfig.js";
import {
    booleanField,
    enumField,
    type Infer,
    collectFields,
    integerField,
    optionalStringField,
    section,
    stringField,
} from "./Schema.js";

const MiB = 1024 * 1024;

export const configSchema = section("matrix-account-data-audit appservice configuration", {
    ...auditModuleSchema.fields,
    homeserver: section("The homeserver whose account-data changes are audited.", {
        url: stringField({
            doc: "Client-server API base URL the appservice uses to post audit messages.",
            sample: "http://localhost:8008",
            check: (v) => (/^https?:\/\/[^/\s]+/.test(v) ? undefined : "must be an http:// or https:// URL"),
        }),
        server_name: stringField({
            doc: "The homeserver's server_name (the part after ':' in its user IDs).",
            sample: "example.org",
            check: (v) => (isServerName(v) ? undefined : "must be a server name such as example.org"),
        }),
    }),
    listen: section(
        "Where the appservice listens: for the homeserver's appservice API, for the host module's\nchange batches, and for /health and /metrics (unauthenticated: keep it on a private interface).",
        {
            bind_address: stringField({ doc: "Address to bind.", default: "127.0.0.1" }),
            port: integerField({ doc: "TCP port.", default: 9993, min: 1, max: 65535 }),
        },
    ),
    ingest: section("The endpoint that takes change batches from the Synapse host module.", {
        token: optionalStringField({
            doc:
                "Bearer token the host module must present. null: use the registration's hs_token, which the\n" +
                "host module reads from the same registration file.",
        }),
        max_body_bytes: integerField({
            doc:
                "Largest request body accepted (413 M_TOO_LARGE above). Keep it above Synapse's largest client\n" +
                "request (max_upload_size, 50M by default), so no single account-data change is refused. It also\n" +
                "applies to the homeserver's appservice transactions (small for this appservice).",
            default: 64 * MiB,
            min: 64 * 1024,
            max: 1024 * MiB,
        }),
    }),
    sending: section("How audit events are sent to the homeserver.", {
        device_id: stringField({
            doc:
                "The sender's device, created at startup if missing. Events sent with it have their transaction\n" +
                "IDs kept in the homeserver's database for 24 hours, so an event resent after a homeserver\n" +
                "restart is never posted twice (without a device, only its memory remembers them).",
            default: "ACCOUNT_DATA_AUDIT",
            check: (v) =>
                /^[A-Za-z0-9._~-]{1,64}$/.test(v) ? undefined : "must be 1-64 characters of A-Z a-z 0-9 . _ ~ -",
        }),
        max_in_flight: integerField({
            doc:
                "Audit events being sent at once, for changes of different users (one user's changes are always\n" +
                "posted one after another, in order; otherwise the lowest sequence number free to go goes first).\n" +
                "Concurrent sends into one room fork its event graph: each new event then points back at every\n" +
                "open branch, but at most 10 (Synapse's limit), so up to 10 the branches merge again at once, and\n" +
                "above it they pile up (the benchmark saw 260 forward extremities after 1,000 raw sends at 16,\n" +
                "9 at 10, 7 at 8). 1 keeps the audit room in exact sequence order.",
            default: 8,
            min: 1,
            max: 10,
        }),
        retry_initial_ms: integerField({
            doc: "First wait before retrying a send after a 5xx or network error; doubles each time.",
            default: 250,
            min: 1,
            max: 60_000,
        }),
        retry_max_ms: integerField({ doc: "Longest wait between two retries.", default: 10_000, min: 1, max: 600_000 }),
        digest: section(
            "Digest mode: while a backlog waits, one audit event carries several changes (its body their\n" +
                "messages, one per line; its record a list), so the trail keeps pace with bursts that one event\n" +
                "per change cannot (Synapse takes events into one room at some tens a second). The host module\n" +
                "decides and records each grouping once, so replays post exactly the same events.",
            {
                enabled: booleanField({
                    doc:
                        "Digest mode, on by default: with no backlog (min_backlog or fewer changes waiting) every\n" +
                        "change still has its own event, exactly the seed's message; off, a user who scripts\n" +
                        "thousands of changes delays every other user's records by minutes.",
                    default: true,
                }),
                min_backlog: integerField({
                    doc:
                        "Digests form only while more changes than this wait to be delivered (below it, each change\n" +
                        "has its event, as without digest mode).",
                    default: 10,
                    min: 0,
                    max: 1_000_000,
                }),
                max_changes: integerField({ doc: "Changes in one digest.", default: 50, min: 2, max: 500 }),
                max_bytes: integerField({
                    doc:
                        "Bytes of content in one digest: the event carries each content up to three times (body,\n" +
                        "record, HTML), and Synapse caps events at 64 KiB; what does not fit is left out, as for a\n" +
                        "single large change.",
                    default: 16_000,
                    min: 1_000,
                    max: 60_000,
                }),
                lanes: integerField({
                    doc:
                        "Digests posted at once. Users are spread over this many lanes by a hash of their ID; a digest\n" +
                        "holds the consecutive changes of one lane, so digests of different lanes share no user and go\n" +
                        "out side by side (each user's changes stay in order; different users' may interleave in the\n" +
                        "room, as with max_in_flight, which also bounds this). On a busy homeserver one digest at a\n" +
                        "time waits behind every client request (the benchmark's burst: 8 lanes kept pace, 1 or 4 did\n" +
                        "not); 1 keeps digests in exact sequence order.",
                    default: 8,
                    min: 1,
                    max: 10,
                }),
            },
        ),
        batch_deadline_ms: integerField({
            doc:
                "How long one batch may keep retrying before it is answered with 503 and left to the host\n" +
                "module, which keeps it and retries later. Keep it below the host module's 60 s request timeout.",
            default: 45_000,
            min: 100,
            max: 55_000,
        }),
    }),
    export: section(
        'A copy of the trail for log shippers and SIEMs (README, "The JSONL export"): every record the audit\n' +
            "room gets, as one JSON object per line (Elastic Common Schema field names), in seq order, exactly once.",
        {
            jsonl: section("The export file.", {
                path: optionalStringField({
                    doc:
                        "The file, appended to and synced before each batch is acknowledged (e.g.\n" +
                        "/var/log/matrix-account-data-audit/audit.jsonl; its directory must exist and be writable).\n" +
                        "null: no file. Rotated files are renamed to <path>.<last seq, 12 digits>; the chain continues\n" +
                        "in the new file. Off in the sample, so a copied sample starts without it.",
                }),
                rotate_bytes: integerField({
                    doc: "Rotate (by renaming) before a batch once the file holds this many bytes; 0: never.",
                    default: 100 * MiB,
                    min: 0,
                    max: 1024 * 1024 * MiB,
                }),
                rotate_seconds: integerField({
                    doc: "Rotate before a batch once the file is this old (seconds); 0: never.",
                    default: 0,
                    min: 0,
                    max: 366 * 86400,
                }),
            }),
            stdout: booleanField({
                doc:
                    "Also write every line to stdout (containers). Exactly once only with a file beside it: stdout\n" +
                    "alone cannot tell a restarted appservice which records it wrote already.",
                default: false,
            }),
        },
    ),
    logging: section("Logging.", {
        level: enumField({
            doc: "Console log level.",
            default: "info",
            values: ["error", "warn", "info", "debug", "trace"],
        }),
        json: booleanField({ doc: "Write log lines as JSON.", default: false }),
    }),
});

export type AppConfig = Infer<typeof configSchema>;

export interface ParsedConfig {
    config: AppConfig;
    /** Dotted paths of keys the schema does not know; they are ignored. */
    unknownKeys: string[];
}

/**
 * Validates a parsed YAML document. Throws InvalidConfigError listing every problem, each naming its key path
 * (with one problem, its message is that problem's).
 */
export function parseConfig(raw: unknown): ParsedConfig {
    if (raw === undefined || raw === null) {
        throw new InvalidConfigError([new ConfigError("", "The config file is empty")]);
    }
    const unknownKeys: string[] = [];
    const problems: ConfigError[] = [];
    const config = collectFields(configSchema.fields, raw, problems, unknownKeys);
    const retry = config.sending as Partial<AppConfig["sending"]> | undefined;
    if (retry?.retry_max_ms !== undefined && retry.retry_initial_ms !== undefined) {
        if (retry.retry_max_ms < retry.retry_initial_ms) {
            problems.push(
                new ConfigError(
                    "sending.retry_max_ms",
                    "'sending.retry_max_ms' must not be smaller than 'sending.retry_initial_ms'",
                ),
            );
        }
    }
    if (problems.length > 0) throw new InvalidConfigError(problems, unknownKeys);
    return { config, unknownKeys };
}
