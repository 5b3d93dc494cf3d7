"""Small helpers for SQL that must run on both of Synapse's database engines."""

from __future__ import annotations

from synapse.storage.database import LoggingTransaction
from synapse.storage.engines import PostgresEngine


def is_postgres(txn: LoggingTransaction) -> bool:
    return isinstance(txn.database_engine, PostgresEngine)


def table_columns_txn(txn: LoggingTransaction, table: str) -> set[str]:
    if is_postgres(txn):
        txn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {str(row[0]) for row in txn}
    txn.execute(f"PRAGMA table_info({table})")
    return {str(row[1]) for row in txn}
