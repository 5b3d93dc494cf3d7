"""The keyed content digest: HMAC-SHA256 of a change's JSON text under a key only the host module keeps.

An audit record that withholds a value (a secret, or a type the audit policy keeps to metadata) still shows
a digest of it, so an auditor can see that two records hold the same value; a plain hash would let anyone
who reads the room test guesses of a low-entropy value (`{"enabled": true}`) offline. The key is made at
random on first start and kept in Synapse's database (``account_data_audit_meta``), where every instance
finds the same one; whoever can read it can also read the account data itself. The hash chain (``chain``)
links records by their keyed digests, which every record publishes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from synapse.storage.database import LoggingTransaction

from .meta import insert_meta_if_missing_txn

_KEY_NAME = "content_digest_key"


def digest_key_txn(txn: LoggingTransaction) -> bytes:
    """The key, made on first use."""
    return bytes.fromhex(insert_meta_if_missing_txn(txn, _KEY_NAME, secrets.token_hex(32)))


def keyed_digest(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
