"""The outbox: account-data changes waiting for the appservice, in Synapse's own database.

Using Synapse's database (through ``run_db_interaction``) makes the outbox durable across restarts, shared
by workers, and work the same on SQLite and PostgreSQL. The table name carries the module's prefix so it
cannot clash with Synapse's own tables.
"""

from __future__ import annotations

from typing import Any

from synapse.storage.database import LoggingTransaction

from . import chain
from .dbutil import is_postgres, table_columns_txn
from .meta import get_meta_txn, set_meta_txn
from .records import (
    KIND_CHANGE,
    KIND_CHECKPOINT,
    KIND_DEACTIVATION,
    KIND_GAP,
    KIND_RECOVERED,
    SOURCE_CALLBACK,
    NewChange,
    OutboxRow,
    encode_content,
    link_hash,
    seal,
    with_salts,
)

__all__ = [
    "KIND_CHANGE",
    "KIND_CHECKPOINT",
    "KIND_DEACTIVATION",
    "KIND_GAP",
    "KIND_RECOVERED",
    "NewChange",
    "OutboxRow",
    "encode_content",
    "with_salts",
]

TABLE = "account_data_audit_outbox"
#: The newest record's ``created_ts`` (the chain head's), kept with the head: how long the trail has been
#: idle (see ``checkpoints``).
HEAD_TS_NAME = "chain_head_ts"

_CREATE_SQLITE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    room_id TEXT,
    account_data_type TEXT NOT NULL,
    content TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    kind TEXT NOT NULL DEFAULT '{KIND_CHANGE}',
    stream_id BIGINT,
    details TEXT,
    keyed_digest TEXT,
    prev_hash TEXT,
    hash TEXT,
    digest_group BIGINT,
    chain_version INTEGER,
    source TEXT
)
"""
# BIGSERIAL never hands out a number twice, like SQLite's AUTOINCREMENT: sequence numbers only grow.
_CREATE_POSTGRES = _CREATE_SQLITE.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")

#: Columns added after the first release, with their definitions: an existing outbox gains them at startup.
_ADDED_COLUMNS = {
    "kind": f"TEXT NOT NULL DEFAULT '{KIND_CHANGE}'",
    "stream_id": "BIGINT",
    "details": "TEXT",
    "keyed_digest": "TEXT",
    "prev_hash": "TEXT",
    "hash": "TEXT",
    "digest_group": "BIGINT",
    # NULL: written before chain version 2, hashed (and delivered) as version 1.
    "chain_version": "INTEGER",
    # NULL: the account-data callback (see ``records.NewChange.source``).
    "source": "TEXT",
}


def create_outbox_txn(txn: LoggingTransaction) -> None:
    txn.execute(_CREATE_POSTGRES if is_postgres(txn) else _CREATE_SQLITE)
    # An outbox made by an earlier version keeps its rows (they are delivered as before) and gains the
    # new columns.
    missing = [name for name in _ADDED_COLUMNS if name not in table_columns_txn(txn, TABLE)]
    for name in missing:
        # IF NOT EXISTS on PostgreSQL: two instances may start at once. SQLite has one process.
        if_not_exists = "IF NOT EXISTS " if is_postgres(txn) else ""
        txn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {if_not_exists}{name} {_ADDED_COLUMNS[name]}")


_COLUMNS = ", ".join(
    (
        "change_id",
        "user_id",
        "room_id",
        "account_data_type",
        "content",
        "created_ts",
        "kind",
        "stream_id",
        "details",
        "keyed_digest",
        "prev_hash",
        "hash",
        "chain_version",
        "source",
    )
)
_PARAMETERS_PER_ROW = 15
#: Rows per multi-row INSERT (750 parameters: under any engine's limit, SQLite's oldest being 999).
_ROWS_PER_STATEMENT = 50


def _values(change: OutboxRow) -> tuple[object, ...]:
    return (
        change.change_id,
        change.user_id,
        change.room_id,
        change.account_data_type,
        change.content,
        change.created_ts,
        change.kind,
        change.stream_id,
        change.details,
        change.keyed_digest,
        change.prev_hash,
        change.hash,
        change.chain_version,
        None if change.source == SOURCE_CALLBACK else change.source,
    )


def _placeholders(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def _one(txn: LoggingTransaction) -> Any:
    row = txn.fetchone()
    assert row is not None
    return row[0]


def _allocate_seqs_txn(txn: LoggingTransaction, count: int) -> int:
    """The first of ``count`` new sequence numbers, in a block (inserters hold the outbox lock on PostgreSQL,
    and SQLite has one writer, so no one else draws numbers meanwhile)."""
    if is_postgres(txn):
        txn.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'seq')")
        sequence = _one(txn)
        txn.execute("SELECT nextval(?)", (sequence,))
        first = int(_one(txn))
        if count > 1:
            txn.execute("SELECT setval(?, ?)", (sequence, first + count - 1))
        return first
    # AUTOINCREMENT keeps the highest number ever used in sqlite_sequence (rows are deleted once delivered);
    # inserting explicit numbers above it moves it on, so numbers are never reused.
    txn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (TABLE,))
    row = txn.fetchone()
    used = int(row[0]) if row is not None else 0
    txn.execute(f"SELECT MAX(seq) FROM {TABLE}")
    return max(used, int(_one(txn) or 0)) + 1


def lock_txn(txn: LoggingTransaction) -> None:
    """Serialises inserters until commit, on PostgreSQL (SQLite has one writer anyway).

    Concurrent inserts would otherwise commit out of sequence order (the delivery loop could see seq N+1
    before N is committed) and fork the chain. This lock (taken only by inserters) makes commit order equal
    sequence order: what is visible is always a gap-free prefix."""
    if is_postgres(txn):
        txn.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")


def insert_many_txn(txn: LoggingTransaction, key: bytes, changes: list[NewChange]) -> list[OutboxRow]:
    """Inserts ``changes`` in list order (their sequence numbers increase in that order), each with its
    keyed digest and salt under the keyed-digest ``key``, and extends the hash chain over them (chain
    version 2). Returns the rows as written."""
    if not changes:
        return []
    lock_txn(txn)
    first = _allocate_seqs_txn(txn, len(changes))
    prev = get_meta_txn(txn, chain.HEAD_NAME) or chain.GENESIS
    rows: list[OutboxRow] = []
    for i, change in enumerate(changes):
        sealed = seal(key, change)
        row_hash = link_hash(sealed, first + i, prev)
        fields = {**sealed.__dict__, "prev_hash": prev, "hash": row_hash}
        rows.append(OutboxRow(**fields, seq=first + i, chain_version=chain.CURRENT_VERSION))
        prev = row_hash
    set_meta_txn(txn, chain.HEAD_NAME, prev)
    set_meta_txn(txn, HEAD_TS_NAME, str(rows[-1].created_ts))
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        placeholders = ", ".join(f"({_placeholders(_PARAMETERS_PER_ROW)})" for _ in chunk)
        args = [value for row in chunk for value in (row.seq, *_values(row))]
        txn.execute(f"INSERT INTO {TABLE} (seq, {_COLUMNS}) VALUES {placeholders}", args)
    return rows


def fetch_batch_txn(
    txn: LoggingTransaction,
    limit: int,
    max_bytes: int,
    after_seq: int = 0,
) -> list[OutboxRow]:
    """The oldest changes after ``after_seq``, in sequence order: at most ``limit`` rows and about
    ``max_bytes`` of content, type and details (always at least one row, however large). Without their salts
    (see ``AuditStore.fetch_batch``).

    The sizes are read first and only the rows that fit are fetched: anyone can store values of tens of
    megabytes, and reading ``limit`` of them at once would hold gigabytes in Synapse's memory. A content over
    ``max_content_bytes`` counts in full too, although it is delivered without it: it is read all the same
    (its size and commitment are computed from it), and held while its batch is in flight."""
    txn.execute(
        f"SELECT seq, LENGTH(COALESCE(content, '')) + LENGTH(COALESCE(details, ''))"
        f" + LENGTH(COALESCE(account_data_type, '')) FROM {TABLE} WHERE seq > ? ORDER BY seq ASC LIMIT ?",
        (after_seq, limit),
    )
    last_seq: int | None = None
    total = 0
    for seq, size in list(txn):
        total += int(size)
        if last_seq is not None and total > max_bytes:
            break
        last_seq = int(seq)
    if last_seq is None:
        return []
    txn.execute(
        f"SELECT seq, {_COLUMNS}, digest_group FROM {TABLE} WHERE seq > ? AND seq <= ? ORDER BY seq ASC",
        (after_seq, last_seq),
    )
    rows: list[OutboxRow] = []
    for (
        seq,
        change_id,
        user_id,
        room_id,
        data_type,
        content,
        created_ts,
        kind,
        stream_id,
        details,
        keyed,
        prev_hash,
        row_hash,
        version,
        source,
        digest_group,
    ) in txn:
        rows.append(
            OutboxRow(
                change_id=change_id,
                user_id=user_id,
                room_id=room_id,
                account_data_type=data_type,
                content=content,
                created_ts=int(created_ts),
                kind=str(kind),
                stream_id=int(stream_id) if stream_id is not None else None,
                details=details,
                keyed_digest=keyed,
                prev_hash=prev_hash,
                hash=row_hash,
                seq=int(seq),
                digest_group=int(digest_group) if digest_group is not None else None,
                chain_version=int(version) if version is not None else 1,
                source=str(source) if source is not None else SOURCE_CALLBACK,
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
