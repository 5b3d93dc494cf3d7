/**
 * Does the config fit the registration? A config that is valid on its own can still fail only at runtime
 * against the homeserver: a sender outside the appservice's namespace (every send refused), a server_name that
 * is not the sender's (IDs built for the wrong server), or an alias the registration does not reserve
 * (create-room --alias refused with M_EXCLUSIVE). `validate-config -f` and `create-room` check here first.
 */
import { localpartOf, serverNameOf } from "../matrix/Identifiers.js";

interface Namespace {
    regex?: unknown;
    exclusive?: unknown;
}

/** The parts of a registration file read here, as the YAML has them. */
export interface RegistrationFile {
    as_token?: unknown;
    sender_localpart?: unknown;
    namespaces?: { users?: Namespace[]; aliases?: Namespace[] };
}

/**
 * Synapse matches namespaces with Python's `re.match`: anchored at the start only. JavaScript's syntax is
 * close enough for the regexes registrations hold; one that does not compile here matches nothing.
 */
function inNamespace(namespaces: Namespace[] | undefined, id: string): boolean {
    return (namespaces ?? []).some((ns) => {
        if (typeof ns?.regex !== "string") return false;
        try {
            return new RegExp(`^(?:${ns.regex})`).test(id);
        } catch {
            return false;
        }
    });
}

export function isAliasReserved(registration: RegistrationFile, alias: string): boolean {
    return inNamespace(registration.namespaces?.aliases, alias);
}

/** Every mismatch between config and registration, as messages naming the keys to fix. */
export function registrationProblems(
    config: { sender: string; homeserver: { server_name: string } },
    registration: RegistrationFile,
    registrationPath: string,
): string[] {
    const problems: string[] = [];
    if (typeof registration?.as_token !== "string") problems.push(`${registrationPath} has no as_token`);
    const serverName = config.homeserver.server_name;
    if (serverNameOf(config.sender) !== serverName) {
        problems.push(
            `'sender' ${config.sender} is not on 'homeserver.server_name' ${serverName}: the sender must be a user ` +
                "of the homeserver the appservice is registered with",
        );
    }
    const senderLocalpart = registration?.sender_localpart;
    const isSender = localpartOf(config.sender) === senderLocalpart;
    if (!isSender && !inNamespace(registration?.namespaces?.users, config.sender)) {
        problems.push(
            `'sender' ${config.sender} is neither the registration's sender_localpart (${String(senderLocalpart)}) ` +
                `nor inside its users namespace (${registrationPath}): the homeserver would refuse every post`,
        );
    }
    return problems;
}
