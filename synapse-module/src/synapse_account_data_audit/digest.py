"""The keyed content digest: HMAC-SHA256 of a change's JSON text under a key only the host module keeps.

An audit record that withholds a value (a secret, or a type the audit policy keeps to metadata) still shows
a digest of it, so an auditor can see that two records hold the same value; a plain hash would let anyone
who reads the room test guesses of a low-entropy value (`{"enabled": true}`) offline. The key is made at
random on first start and kept in Synapse's database (``account_data_audit_secrets``), where every instance
finds the same one; whoever can read it can also read the account data itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from synapse.storage.database import LoggingTransaction

SECRETS_TABLE = "account_data_audit_secrets"
_KEY_NAME = "content_digest_key"


def create_tables_txn(txn: LoggingTransaction) -> None:
    txn.execute(f"CREATE TABLE IF NOT EXISTS {SECRETS_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")


def digest_key_txn(txn: LoggingTransaction) -> bytes:
    """The key, made on first use (two instances racing both read the one that was stored first)."""
    txn.execute(
        f"INSERT INTO {SECRETS_TABLE} (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (_KEY_NAME, secrets.token_hex(32)),
    )
    txn.execute(f"SELECT value FROM {SECRETS_TABLE} WHERE name = ?", (_KEY_NAME,))
    row = txn.fetchone()
    assert row is not None
    return bytes.fromhex(str(row[0]))


def keyed_digest(key: bytes, content: str) -> str:
    return hmac.new(key, content.encode("utf-8"), hashlib.sha256).hexdigest()
