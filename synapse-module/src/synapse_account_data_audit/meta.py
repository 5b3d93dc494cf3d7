"""Small named values the module keeps in Synapse's database (``account_data_audit_meta``): the keyed-digest
key and the hash chain's head. Every instance reads the same ones."""

from __future__ import annotations

from synapse.storage.database import LoggingTransaction

META_TABLE = "account_data_audit_meta"


def create_tables_txn(txn: LoggingTransaction) -> None:
    txn.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")


def get_meta_txn(txn: LoggingTransaction, name: str) -> str | None:
    txn.execute(f"SELECT value FROM {META_TABLE} WHERE name = ?", (name,))
    row = txn.fetchone()
    return str(row[0]) if row is not None else None


def set_meta_txn(txn: LoggingTransaction, name: str, value: str) -> None:
    txn.execute(
        f"INSERT INTO {META_TABLE} (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = ?",
        (name, value, value),
    )


def insert_meta_if_missing_txn(txn: LoggingTransaction, name: str, value: str) -> str:
    """Stores ``value`` unless ``name`` has one already; returns the stored value (two instances racing both
    read the one that was stored first)."""
    txn.execute(
        f"INSERT INTO {META_TABLE} (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, value)
    )
    stored = get_meta_txn(txn, name)
    assert stored is not None
    return stored
