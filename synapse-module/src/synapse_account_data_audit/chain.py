"""The hash chain: every outbox row gets the hash of the row before it and its own hash, computed where the
order is decided (in the transaction that gives the rows their sequence numbers), with the chain head kept in
Synapse's database, so it survives restarts, outbox deletions and crash recovery.

    hash = SHA-256( JSON ["v1", seq, change_id, ts, kind, user_id, room_id, type, content_digest, prev_hash] )

The JSON text is compact (no spaces) with every character outside printable ASCII escaped as ``\\uXXXX``
(Python's ``json.dumps(..., separators=(",", ":"))``); ``room_id`` is null for global account data,
``content_digest`` is ``hmac-sha256:<hex>`` (the keyed digest the room publishes for every record), and the
first row's ``prev_hash`` is 64 zeros. README ("The hash chain") has a worked example that the tests check.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

GENESIS = "0" * 64
CHAIN_VERSION = "v1"
HEAD_NAME = "chain_head"


@dataclass(frozen=True)
class Link:
    """What a record's hash covers (``kind`` as stored: change, recovered, gap, deactivation)."""

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
    digest = f"hmac-sha256:{link.keyed_digest}" if link.keyed_digest else None
    fields = [
        CHAIN_VERSION,
        link.seq,
        link.change_id,
        link.ts,
        link.kind,
        link.user_id,
        link.room_id,
        link.account_data_type,
        digest,
        link.prev_hash,
    ]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True)


def record_hash(link: Link) -> str:
    return hashlib.sha256(canonical(link).encode("ascii")).hexdigest()
