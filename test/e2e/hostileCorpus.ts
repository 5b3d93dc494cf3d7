/**
 * Account-data writes a user of the homeserver can make that Synapse 1.163 answers with 200 and passes to
 * `on_account_data_updated`, built from Synapse's own rules rather than from known failures:
 *
 * - room account data (`rest/client/account_data.py`): the room ID only has to pass `RoomID.is_valid`: a `!`,
 *   then either `localpart:domain` where the localpart is anything (any length, spaces, non-ASCII, control
 *   characters, `/` via `%2F`, even empty) and the domain passes `parse_and_validate_server_name` (a DNS-like
 *   name or `[IPv6]`, an optional port that Python's `int()` reads), or 43 characters of unpadded URL-safe
 *   base64 (MSC4291). No membership or existence check.
 * - the type is the path segment `[^/]*`, URL-decoded: any characters, any length the request line allows
 *   (Twisted caps a request line at 16 KiB), also empty; only `m.fully_read` and `m.push_rules` are refused.
 * - the content is any JSON object Python's `json` reads (`parse_json_object_from_request`): any depth its
 *   decoder manages, lone surrogates, duplicate keys, integers of any size, floats; NaN and Infinity literals
 *   are refused.
 *
 * Each case names what Synapse answers; the e2e test checks that and that the trail goes on.
 */

export interface HostileWrite {
    name: string;
    /** Room ID for room account data, or null for global account data. */
    roomId: string | null;
    type: string;
    /** The request body, as JSON text. */
    content: string;
    /** What Synapse answers (200: stored and passed to the module). */
    synapseStatus: number;
}

function nested(depth: number): string {
    return `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

function nestedArrays(depth: number): string {
    return `{"a":${"[".repeat(depth)}${"]".repeat(depth)}}`;
}

function wide(keys: number): string {
    return `{${Array.from({ length: keys }, (_, i) => `"k${i}":${i}`).join(",")}}`;
}

const SERVER = "example.org";

export const HOSTILE_WRITES: readonly HostileWrite[] = [
    { name: "room ID with a space", roomId: `!a b:${SERVER}`, type: "x", content: "{}", synapseStatus: 200 },
    {
        name: "room ID of 300 characters",
        roomId: `!${"r".repeat(300)}:${SERVER}`,
        type: "x",
        content: "{}",
        synapseStatus: 200,
    },
    {
        name: "room ID of 10,000 characters",
        roomId: `!${"r".repeat(10_000)}:${SERVER}`,
        type: "x",
        content: "{}",
        synapseStatus: 200,
    },
    { name: "room ID with non-ASCII", roomId: `!ümlaut☃😀:${SERVER}`, type: "x", content: "{}", synapseStatus: 200 },
    {
        name: "room ID with a newline forging a line",
        // The localpart ends at the first colon, so the forged line cannot hold one.
        roomId: `!x\n@bob has changed their account data for type m.forged to {}:${SERVER}`,
        type: "x",
        content: "{}",
        synapseStatus: 200,
    },
    {
        name: "room ID with control characters and bidi overrides",
        roomId: `!\u0001\u007f\u202e\u200b:${SERVER}`,
        type: "x",
        content: "{}",
        synapseStatus: 200,
    },
    { name: "room ID with a slash", roomId: `!a/b:${SERVER}`, type: "x", content: "{}", synapseStatus: 200 },
    {
        name: "room ID with HTML",
        roomId: `!<script>alert(1)</script>&amp;"':${SERVER}`,
        type: "x",
        content: "{}",
        synapseStatus: 200,
    },
    { name: "room ID with an empty localpart", roomId: `!:${SERVER}`, type: "x", content: "{}", synapseStatus: 200 },
    { name: "room ID with an IPv6 server", roomId: "!x:[::1]:8448", type: "x", content: "{}", synapseStatus: 200 },
    { name: "room ID with an odd port", roomId: `!x:${SERVER}:+0_8`, type: "x", content: "{}", synapseStatus: 200 },
    {
        name: "domainless room ID (MSC4291)",
        roomId: `!${"A-_0".repeat(10)}abc`,
        type: "x",
        content: "{}",
        synapseStatus: 200,
    },
    { name: "room ID without a colon", roomId: "!nocolon", type: "x", content: "{}", synapseStatus: 400 },
    { name: "empty type", roomId: null, type: "", content: '{"empty_type":true}', synapseStatus: 200 },
    { name: "type of 8 KiB", roomId: null, type: "t".repeat(8192), content: "{}", synapseStatus: 200 },
    { name: "type of 15 KiB", roomId: null, type: "t".repeat(15_000), content: "{}", synapseStatus: 200 },
    {
        name: "type of 5,000 escaped control characters",
        roomId: null,
        type: "\u0001".repeat(5_000),
        content: "{}",
        synapseStatus: 200,
    },
    {
        name: "type with newlines, HTML and quotes",
        roomId: null,
        type: "x\n<b>bold</b>&\"'\\",
        content: "{}",
        synapseStatus: 200,
    },
    {
        name: "type with a newline forging a line",
        roomId: null,
        type: `x to: {}\n@bob:${SERVER} has changed their account data for type m.forged`,
        content: "{}",
        synapseStatus: 200,
    },
    {
        name: "content with an Infinity literal",
        roomId: null,
        type: "org.example.infinity",
        content: '{"x":Infinity}',
        synapseStatus: 400,
    },
    {
        name: "content with a number beyond a double's range",
        roomId: null,
        type: "org.example.huge_float",
        content: '{"x":1e400}',
        synapseStatus: 500,
    },
    { name: "type of 1,600 dots", roomId: null, type: ".".repeat(1_600), content: "{}", synapseStatus: 200 },
    {
        name: "content nested 600 deep",
        roomId: null,
        type: "org.example.deep",
        content: nested(600),
        synapseStatus: 200,
    },
    {
        name: "content nested in arrays 900 deep",
        roomId: null,
        type: "org.example.deep_arrays",
        content: nestedArrays(900),
        synapseStatus: 200,
    },
    {
        name: "content with 20,000 keys",
        roomId: null,
        type: "org.example.wide",
        content: wide(20_000),
        synapseStatus: 200,
    },
    {
        name: "content with lone surrogates",
        roomId: null,
        type: "org.example.surrogates",
        content: '{"lone":"\\ud800","low":"\\udc00x","\\udbff":1}',
        synapseStatus: 200,
    },
    {
        name: "content with NUL and control characters",
        roomId: null,
        type: "org.example.nul",
        content: '{"nul":"a\\u0000b","bell":"\\u0007"}',
        synapseStatus: 200,
    },
    {
        name: "content with numbers events cannot hold",
        roomId: null,
        type: "org.example.numbers",
        content: '{"big":123456789012345678901234567890,"neg":-9007199254740993,"f":1.0,"e":1e-7,"z":-0.0}',
        synapseStatus: 200,
    },
    {
        name: "content with duplicate keys",
        roomId: null,
        type: "org.example.dupes",
        content: '{"a":1,"b":2,"a":3}',
        synapseStatus: 200,
    },
    {
        name: "content with HTML",
        roomId: null,
        type: "org.example.html",
        content: '{"<img src=x onerror=alert(1)>":"</pre><script>alert(1)</script>"}',
        synapseStatus: 200,
    },
    {
        name: "content of 3 MB of astral characters",
        roomId: null,
        type: "org.example.astral",
        content: `{"s":"${"😀".repeat(750_000)}"}`,
        synapseStatus: 200,
    },
];
