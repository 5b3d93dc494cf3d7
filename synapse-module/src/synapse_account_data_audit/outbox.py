"""The outbox: account-data changes waiting for the appservice, in Synapse's own database.

Using Synapse's database (through ``run_db_interaction``) makes the outbox durable across restarts, shared
by workers, and work the same on SQLite and PostgreSQL. The table name carries the module's prefix so it
cannot clash with Synapse's own tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synapse.storage.database import LoggingTransaction

from . import chain
from .dbutil import is_postgres, table_columns_txn
from .meta import get_meta_txn, set_meta_txn

TABLE = "account_data_audit_outbox"

#: What an outbox row is: an account-data change the callback saw, one that crash recovery found in
#: Synapse's tables, or a notice that earlier values of some keys were overwritten before they were recorded.
KIND_CHANGE = "change"
KIND_RECOVERED = "recovered"
KIND_GAP = "gap"
#: A user was deactivated or reactivated (Synapse deletes a deactivated user's account data without calling
#: the account-data callback; ``content`` says which, and by whom).
KIND_DEACTIVATION = "deactivation"

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
    digest_group BIGINT
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
}


@dataclass(frozen=True)
class NewChange:
    """A change as the callback recorded it (or recovery found it), before it has a sequence number."""

    change_id: str
    user_id: str
    room_id: str | None
    account_data_type: str
    content: str
    created_ts: int
    kind: str = KIND_CHANGE
    #: The change's position in Synapse's account-data stream, where it is known (see ``claims``).
    stream_id: int | None = None
    #: For a gap notice: its JSON (the keys concerned and how many values were lost).
    details: str | None = None
    #: HMAC-SHA256 of ``content`` (of ``details`` for a gap notice) under the host module's digest key (see
    #: ``digest``), set when written.
    keyed_digest: str | None = None
    #: The hash chain (see ``chain``), set when written.
    prev_hash: str | None = None
    hash: str | None = None

    @property
    def digest_input(self) -> str:
        """The text the keyed digest covers."""
        return self.details or "{}" if self.kind == KIND_GAP else self.content


@dataclass(frozen=True)
class OutboxRow(NewChange):
    """A change in the outbox, with its sequence number."""

    seq: int = field(kw_only=True)
    #: The first seq of the digest this row is delivered in, or 0 to go alone, once decided (see ``digests``);
    #: never changes.
    digest_group: int | None = field(default=None, kw_only=True)

    def to_wire(self, without_content: bool = False) -> dict[str, Any]:
        """The row as the delivery protocol carries it (``content`` stays JSON text). ``without_content``:
        ``content`` is null and ``content_omitted`` says how large it was (the appservice could not take it in
        any request, and posts the change quarantined)."""
        wire: dict[str, Any] = {"id": self.change_id, "seq": self.seq, "ts": self.created_ts}
        if self.kind == KIND_GAP:
            wire.update(kind=KIND_GAP, gap=json.loads(self.details or "{}"))
        elif self.kind == KIND_DEACTIVATION:
            facts = json.loads(self.content)
            wire.update(
                kind=KIND_DEACTIVATION,
                user_id=self.user_id,
                deactivated=bool(facts.get("deactivated")),
                by_admin=bool(facts.get("by_admin")),
            )
        else:
            wire.update(
                user_id=self.user_id,
                room_id=self.room_id,
                type=self.account_data_type,
                content=None if without_content else self.content,
            )
            if without_content:
                wire["content_omitted"] = {"size": len(self.content.encode("utf-8")), "reason": "too_large"}
            if self.kind == KIND_RECOVERED:
                wire["recovered"] = True
        if self.keyed_digest is not None:
            wire["keyed_digest"] = self.keyed_digest
        if self.hash is not None:
            wire["chain"] = {"prev": self.prev_hash, "hash": self.hash}
        if self.digest_group:  # 0: decided to go alone
            wire["digest_group"] = self.digest_group
        return wire


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
    )
)
#: Rows per multi-row INSERT (13 parameters each: under any engine's parameter limit).
_ROWS_PER_STATEMENT = 50


def _values(change: NewChange) -> tuple[object, ...]:
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


def insert_many_txn(txn: LoggingTransaction, changes: list[NewChange]) -> list[OutboxRow]:
    """Inserts ``changes`` in list order (their sequence numbers increase in that order) and extends the hash
    chain over them. ``changes`` must carry their keyed digests. Returns the rows as written."""
    if not changes:
        return []
    if is_postgres(txn):
        # Concurrent inserts would otherwise commit out of sequence order (the delivery loop could see seq N+1
        # before N is committed) and fork the chain. This lock (held until commit, taken only by inserters)
        # makes commit order equal sequence order: what is visible is always a gap-free prefix.
        txn.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
    first = _allocate_seqs_txn(txn, len(changes))
    prev = get_meta_txn(txn, chain.HEAD_NAME) or chain.GENESIS
    rows: list[OutboxRow] = []
    for i, change in enumerate(changes):
        seq = first + i
        digest = chain.record_hash(
            chain.Link(
                seq=seq,
                change_id=change.change_id,
                ts=change.created_ts,
                kind=change.kind,
                user_id=change.user_id,
                room_id=change.room_id,
                account_data_type=change.account_data_type,
                keyed_digest=change.keyed_digest,
                prev_hash=prev,
            )
        )
        rows.append(OutboxRow(**{**change.__dict__, "prev_hash": prev, "hash": digest}, seq=seq))
        prev = digest
    set_meta_txn(txn, chain.HEAD_NAME, prev)
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        placeholders = ", ".join(f"({_placeholders(13)})" for _ in chunk)
        args = [value for row in chunk for value in (row.seq, *_values(row))]
        txn.execute(f"INSERT INTO {TABLE} (seq, {_COLUMNS}) VALUES {placeholders}", args)
    return rows


def fetch_batch_txn(
    txn: LoggingTransaction, limit: int, max_bytes: int, after_seq: int = 0
) -> list[OutboxRow]:
    """The oldest changes after ``after_seq``, in sequence order: at most ``limit`` rows and about
    ``max_bytes`` of content (always at least one row, however large)."""
    txn.execute(
        f"SELECT seq, {_COLUMNS}, digest_group FROM {TABLE} WHERE seq > ? ORDER BY seq ASC LIMIT ?",
        (after_seq, limit),
    )
    rows: list[OutboxRow] = []
    total = 0
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
        digest,
        prev_hash,
        row_hash,
        digest_group,
    ) in txn:
        total += len(content) + len(details or "")
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
                kind=str(kind),
                stream_id=int(stream_id) if stream_id is not None else None,
                details=details,
                keyed_digest=digest,
                prev_hash=prev_hash,
                hash=row_hash,
                seq=int(seq),
                digest_group=int(digest_group) if digest_group is not None else None,
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
