"""The hash chain: every outbox row gets the hash of the row before it and its own hash, computed where the
order is decided (in the transaction that gives the rows their sequence numbers), with the chain head kept in
Synapse's database, so it survives restarts, outbox deletions and crash recovery.

Version 2 (every row written by this version; README, "The hash chain", has a worked example the tests check):

    hash = SHA-256( JSON ["v2", seq, change_id, ts, kind, user_id, room_id, type, content_size, commitment,
                          keyed_digest, prev_hash] )

``commitment`` is ``sha256:<hex>`` of a per-record salt followed by the content's JSON text: it binds the
content to the chain, so anyone holding the content and the salt can check it, while a record whose content
is withheld (its salt withheld with it) gives nothing to test guesses against. ``keyed_digest`` is
``hmac-sha256:<hex>`` (see ``keyed_digest``). Records with no content (deactivation, gap, checkpoint) have
null size and commitment; a checkpoint has no keyed digest either.

Version 1 (rows written before the upgrade, still delivered and verified as they were):

    hash = SHA-256( JSON ["v1", seq, change_id, ts, kind, user_id, room_id, type, content_digest, prev_hash] )

Both: the JSON text is compact (no spaces) with every character outside printable ASCII escaped as
``\\uXXXX`` (Python's ``json.dumps(..., separators=(",", ":"))``), ``room_id`` is null for global account
data, and the first row's ``prev_hash`` is 64 zeros. An upgrade continues the chain: the first v2 row's
``prev_hash`` is the last v1 row's hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

GENESIS = "0" * 64
CHAIN_VERSION = "v1"
HEAD_NAME = "chain_head"
#: The version every row is written with now (stored per row, see ``outbox``; a NULL there is version 1).
CURRENT_VERSION = 2
#: Hex digits of a record's salt (128 bits: a withheld content cannot be guessed through its commitment).
SALT_HEX_DIGITS = 32


@dataclass(frozen=True)
class Link:
    """What a version 1 record's hash covers (``kind`` as stored: change, recovered, gap, deactivation)."""

    seq: int
    change_id: str
    ts: int
    kind: str
    user_id: str
    room_id: str | None
    account_data_type: str
    keyed_digest: str | None
    prev_hash: str


def canonical(link: Link) -> str:
    content_digest = f"hmac-sha256:{link.keyed_digest}" if link.keyed_digest else None
    fields = [
        CHAIN_VERSION,
        link.seq,
        link.change_id,
        link.ts,
        link.kind,
        link.user_id,
        link.room_id,
        link.account_data_type,
        content_digest,
        link.prev_hash,
    ]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True)


def record_hash(link: Link) -> str:
    return hashlib.sha256(canonical(link).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class LinkV2:
    """What a version 2 record's hash covers (``kind``: change, recovered, gap, deactivation, checkpoint)."""

    seq: int
    change_id: str
    ts: int
    kind: str
    user_id: str
    room_id: str | None
    account_data_type: str
    #: Bytes of the content's UTF-8 JSON text (change and recovered records), else None.
    content_size: int | None
    #: ``sha256:<hex>`` of salt + content (change and recovered records), else None.
    commitment: str | None
    #: The keyed digest, hex without prefix (None for a checkpoint).
    keyed_digest: str | None
    prev_hash: str


def canonical_v2(link: LinkV2) -> str:
    keyed = f"hmac-sha256:{link.keyed_digest}" if link.keyed_digest else None
    fields = [
        "v2",
        link.seq,
        link.change_id,
        link.ts,
        link.kind,
        link.user_id,
        link.room_id,
        link.account_data_type,
        link.content_size,
        link.commitment,
        keyed,
        link.prev_hash,
    ]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True)


def record_hash_v2(link: LinkV2) -> str:
    return hashlib.sha256(canonical_v2(link).encode("ascii")).hexdigest()


def salt_for(key: bytes, change_id: str) -> str:
    """A record's salt, derived from the keyed-digest key rather than stored: every delivery (after any
    restart, on any instance) sends the same one, and nobody without the key can compute it."""
    mac = hmac.new(key, f"salt:{change_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:SALT_HEX_DIGITS]


def commitment(salt: str, content: str) -> str:
    return "sha256:" + hashlib.sha256((salt + content).encode("utf-8")).hexdigest()


def content_size(content: str) -> int:
    return len(content.encode("utf-8"))
