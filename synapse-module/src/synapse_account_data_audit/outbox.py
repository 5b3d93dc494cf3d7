"""The outbox: account-data changes waiting for the appservice, in Synapse's own database.

Using Synapse's database (through ``run_db_interaction``) makes the outbox durable across restarts, shared
by workers, and work the same on SQLite and PostgreSQL. The table name carries the module's prefix so it
cannot clash with Synapse's own tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synapse.module_api import ModuleApi
from synapse.storage.database import LoggingTransaction
from synapse.storage.engines import PostgresEngine

TABLE = "account_data_audit_outbox"

_CREATE_SQLITE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    room_id TEXT,
    account_data_type TEXT NOT NULL,
    content TEXT NOT NULL,
    created_ts BIGINT NOT NULL
)
"""
# BIGSERIAL never hands out a number twice, like SQLite's AUTOINCREMENT: sequence numbers only grow.
_CREATE_POSTGRES = _CREATE_SQLITE.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")


@dataclass(frozen=True)
class NewChange:
    """A change as the callback recorded it, before it has a sequence number."""

    change_id: str
    user_id: str
    room_id: str | None
    account_data_type: str
    content: str
    created_ts: int


@dataclass(frozen=True)
class OutboxRow(NewChange):
    """A change in the outbox, with its sequence number."""

    seq: int

    def to_wire(self) -> dict[str, Any]:
        """The change as the delivery protocol carries it (``content`` stays JSON text)."""
        return {
            "id": self.change_id,
            "seq": self.seq,
            "ts": self.created_ts,
            "user_id": self.user_id,
            "room_id": self.room_id,
            "type": self.account_data_type,
            "content": self.content,
        }


def _to_json_compatible(value: object) -> object:
    # Synapse may hand us immutable mappings (e.g. from its caches); json only knows dict.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, frozenset)):
        return list(value)
    raise TypeError(f"Cannot serialise {type(value).__name__} in account data")


def encode_content(content: Mapping[str, Any]) -> str:
    """JSON text of the content; floats keep Python's repr, so the appservice sees 1.0 as 1.0."""
    return json.dumps(content, separators=(",", ":"), allow_nan=False, default=_to_json_compatible)


def create_table_txn(txn: LoggingTransaction) -> None:
    is_postgres = isinstance(txn.database_engine, PostgresEngine)
    txn.execute(_CREATE_POSTGRES if is_postgres else _CREATE_SQLITE)


def insert_many_txn(txn: LoggingTransaction, changes: list[NewChange]) -> None:
    """Inserts ``changes`` in list order (their sequence numbers increase in that order)."""
    if isinstance(txn.database_engine, PostgresEngine):
        # Concurrent inserts would otherwise commit out of sequence order, and the delivery loop could see
        # seq N+1 before N is committed. This lock (held until commit, and taken only by inserters) makes
        # commit order equal sequence order, so what is visible is always a gap-free prefix. SQLite has a
        # single writer already.
        txn.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
    for change in changes:
        # One statement per row, not executemany/execute_values: only per-statement order is guaranteed
        # to assign the sequence numbers in list order.
        txn.execute(
            f"INSERT INTO {TABLE} (change_id, user_id, room_id, account_data_type, content, created_ts)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                change.change_id,
                change.user_id,
                change.room_id,
                change.account_data_type,
                change.content,
                change.created_ts,
            ),
        )


def fetch_batch_txn(
    txn: LoggingTransaction, limit: int, max_bytes: int, after_seq: int = 0
) -> list[OutboxRow]:
    """The oldest changes after ``after_seq``, in sequence order: at most ``limit`` rows and about
    ``max_bytes`` of content (always at least one row, however large)."""
    txn.execute(
        f"SELECT seq, change_id, user_id, room_id, account_data_type, content, created_ts"
        f" FROM {TABLE} WHERE seq > ? ORDER BY seq ASC LIMIT ?",
        (after_seq, limit),
    )
    rows: list[OutboxRow] = []
    total = 0
    for seq, change_id, user_id, room_id, data_type, content, created_ts in txn:
        total += len(content)
        if rows and total > max_bytes:
            break
        rows.append(
            OutboxRow(
                change_id=change_id,
                user_id=user_id,
                room_id=room_id,
                account_data_type=data_type,
                content=content,
                created_ts=int(created_ts),
                seq=int(seq),
            )
        )
    return rows


def delete_range_txn(txn: LoggingTransaction, first_seq: int, last_seq: int) -> None:
    """Deletes the delivered rows: exactly the range that was sent, never anything outside it."""
    txn.execute(f"DELETE FROM {TABLE} WHERE seq >= ? AND seq <= ?", (first_seq, last_seq))


def stats_txn(txn: LoggingTransaction) -> tuple[int, int | None]:
    """(number of rows, created_ts of the oldest row or None)."""
    txn.execute(f"SELECT COUNT(*), MIN(created_ts) FROM {TABLE}")
    row = txn.fetchone()
    assert row is not None
    return int(row[0]), (int(row[1]) if row[1] is not None else None)


class Outbox:
    """The outbox table, through Synapse's database pool."""

    def __init__(self, api: ModuleApi) -> None:
        self._api = api
        self._table_ready = False

    async def ensure_table(self) -> None:
        if not self._table_ready:
            await self._api.run_db_interaction("account_data_audit_create", create_table_txn)
            self._table_ready = True

    async def insert_many(self, changes: list[NewChange]) -> None:
        await self.ensure_table()
        await self._api.run_db_interaction("account_data_audit_record", insert_many_txn, changes)

    async def fetch_batch(self, limit: int, max_bytes: int, after_seq: int = 0) -> list[OutboxRow]:
        await self.ensure_table()
        return await self._api.run_db_interaction(
            "account_data_audit_fetch", fetch_batch_txn, limit, max_bytes, after_seq
        )

    async def delete_range(self, first_seq: int, last_seq: int) -> None:
        await self._api.run_db_interaction("account_data_audit_delete", delete_range_txn, first_seq, last_seq)

    async def stats(self) -> tuple[int, int | None]:
        return await self._api.run_db_interaction("account_data_audit_stats", stats_txn)
