"""The keyed digest: HMAC-SHA256 under a key only the host module keeps, of a record's key and value.

An audit record that withholds a value (a secret, or a type the audit policy keeps to metadata) still shows
a keyed digest of it, so an auditor can see that a key's value changed or came back; a plain hash would let
anyone who reads the room test guesses of a low-entropy value (`{"enabled": true}`) offline. The keyed digest
covers the key (user ID, room ID, type) with the value: were it over the value alone, anyone could set their
own account data to a guess and compare keyed digests with another user's withheld value. The key is made at
random on first start and kept in Synapse's database (``account_data_audit_meta``), where every instance finds
the same one; whoever can read it can also read the account data itself. The hash chain (``chain``) covers the
keyed digest, which every record publishes; the same key also derives each record's salt (``chain.salt_for``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

from synapse.storage.database import LoggingTransaction

from .meta import insert_meta_if_missing_txn

_KEY_NAME = "content_digest_key"


def keyed_digest_key_txn(txn: LoggingTransaction) -> bytes:
    """The key, made on first use."""
    return bytes.fromhex(insert_meta_if_missing_txn(txn, _KEY_NAME, secrets.token_hex(32)))


def keyed_digest(key: bytes, text: str) -> str:
    """HMAC of ``text`` alone: a gap notice's details (and every record written by chain version 1)."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def keyed_digest_of_key(
    key: bytes, user_id: str, room_id: str | None, account_data_type: str, content: str
) -> str:
    """HMAC of one account-data key's value (chain version 2): equal values of different keys differ, one
    key's repeated value keeps its keyed digest. A JSON array, so no choice of fields can shift one into
    another."""
    fields = [user_id, room_id, account_data_type, content]
    return keyed_digest(key, json.dumps(fields, separators=(",", ":"), ensure_ascii=True))
