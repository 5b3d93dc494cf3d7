"""Room tags (``m.tag``) from Synapse's tables: the account-data callback never sees them.

Synapse keeps the current tags in ``room_tags`` (one row per user, room and tag) and one row per (user, room)
in ``room_tags_revisions``, rewritten with a new account-data stream ID on every tag change. A new revision
says that a room's tags changed, not how; the module keeps a copy of each room's tags as it last recorded
them (``account_data_audit_tags``) and records the room's tags when they differ from it. So several changes
between two polls become one record (the tags as they are now), and a revision that left the tags as they
were (a tag set to the value it had) records nothing.

The record is room account data of type ``m.tag`` whose content is what a client sees in ``/sync``:
``{"tags": {"m.favourite": {"order": 0.5}}}``, ``{"tags": {}}`` once the last tag is removed.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from synapse.storage.database import LoggingTransaction

from .records import SOURCE_TAGS, NewChange, encode_content

STATE_NAME = "poll:tags"
SOURCE = SOURCE_TAGS
TAG_TYPE = "m.tag"
#: The module's copy of each room's tags as last recorded: what a new revision is compared with.
COPY_TABLE = "account_data_audit_tags"

#: The columns read (checked at startup).
REQUIRED: dict[str, tuple[str, ...]] = {
    "room_tags_revisions": ("user_id", "room_id", "stream_id"),
    "room_tags": ("user_id", "room_id", "tag", "content"),
}

Revision = tuple[int, str, str]


def create_tables_txn(txn: LoggingTransaction) -> None:
    txn.execute(
        f"CREATE TABLE IF NOT EXISTS {COPY_TABLE} (user_id TEXT NOT NULL, room_id TEXT NOT NULL,"
        " content TEXT NOT NULL, PRIMARY KEY (user_id, room_id))"
    )


def max_position_txn(txn: LoggingTransaction) -> int:
    """The newest revision (a full scan, no index on stream_id: only at a first start without a position)."""
    txn.execute("SELECT COALESCE(MAX(stream_id), 0) FROM room_tags_revisions")
    row = txn.fetchone()
    return int(row[0]) if row is not None else 0


def read_txn(txn: LoggingTransaction, after: int, upto: int | None, limit: int) -> list[Revision]:
    """Revisions after ``after`` (and at most ``upto``), oldest first. No index of Synapse's serves this
    (only (user_id, room_id)): the poller runs it only when the account-data stream has moved."""
    bound = "" if upto is None else " AND stream_id <= ?"
    args: tuple[int, ...] = (after,) if upto is None else (after, upto)
    txn.execute(
        f"SELECT stream_id, user_id, room_id FROM room_tags_revisions WHERE stream_id > ?{bound}"
        " ORDER BY stream_id ASC LIMIT ?",
        (*args, limit),
    )
    return [(int(stream_id), str(user_id), str(room_id)) for stream_id, user_id, room_id in txn]


def room_tags_txn(txn: LoggingTransaction, user_id: str, room_id: str) -> str:
    """The room's tags as ``/sync`` shows them, as the JSON text the outbox holds (tags in name order, each
    tag's content as Synapse stored it)."""
    txn.execute(
        "SELECT tag, content FROM room_tags WHERE user_id = ? AND room_id = ? ORDER BY tag ASC",
        (user_id, room_id),
    )
    return encode_content({"tags": {str(tag): json.loads(content) for tag, content in txn}})


def changes_txn(
    txn: LoggingTransaction, revisions: list[Revision], now_ms: int, new_id: Callable[[], str]
) -> list[NewChange]:
    """One change per room whose tags differ from the copy, in revision order; updates the copy."""
    changes: list[NewChange] = []
    # A room revised twice in one poll's rows is read once, at its last revision's place.
    last = {(user_id, room_id): stream_id for stream_id, user_id, room_id in revisions}
    for stream_id, user_id, room_id in revisions:
        if last[(user_id, room_id)] != stream_id:
            continue
        content = room_tags_txn(txn, user_id, room_id)
        txn.execute(f"SELECT content FROM {COPY_TABLE} WHERE user_id = ? AND room_id = ?", (user_id, room_id))
        row = txn.fetchone()
        if row is not None and row[0] == content:
            continue
        txn.execute(
            f"INSERT INTO {COPY_TABLE} (user_id, room_id, content) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, room_id) DO UPDATE SET content = ?",
            (user_id, room_id, content, content),
        )
        changes.append(
            NewChange(
                change_id=new_id(),
                user_id=user_id,
                room_id=room_id,
                account_data_type=TAG_TYPE,
                content=content,
                created_ts=now_ms,
                source=SOURCE,
            )
        )
    return changes
