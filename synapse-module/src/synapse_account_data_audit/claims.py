"""Which positions of Synapse's account-data stream the outbox holds: the bookkeeping crash recovery needs.

Synapse keeps one row per account-data key (``account_data``, ``room_account_data``), rewritten with a new
``stream_id`` on every change, and calls our callback only after it committed that row, without saying
which ``stream_id`` the change got. So the writer reads the key's row back inside the transaction that
inserts the change into the outbox, and *claims* the row's position when the row still holds the content
being recorded:

- If the key has changed again meanwhile (the row holds other content), the position belongs to that later
  change: nothing is claimed now, and the later change claims it when it is recorded.
- Of several changes of one key in one transaction, only the last one may claim, and only if its content
  matches. An earlier one with matching content (A, B, A': the row holds A' = A) must not: the row's
  position is then a later change's (A', not yet seen or in this batch), and a crash before that change is
  recorded would leave its position claimed and the key's latest value (A') missing from the trail.
- A later change with the *same* content, committed but not yet seen by the callback, is the one case
  where a position is claimed early; the writer records that change too when its callback comes (the claim
  is then made again, a no-op). Only a crash in between loses it, and then the audit room already shows
  the same value for that key.

Claimed positions go into ``account_data_audit_recorded`` in the same transaction as the outbox rows, so
a claim exists exactly when the change is in the outbox (or was delivered). Recovery compares Synapse's
rows with these claims (see ``recovery``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from synapse.storage.database import LoggingTransaction

from .meta import get_meta_txn, set_meta_txn
from .outbox import KIND_CHANGE, NewChange

RECORDED_TABLE = "account_data_audit_recorded"

#: The position up to which every account-data change is in the outbox or was handled by recovery.
STATE_RECOVERED_THROUGH = "recovered_through"

_CREATE = [
    # key_hash identifies the account-data key (user, room, type) without storing it again.
    f"CREATE TABLE IF NOT EXISTS {RECORDED_TABLE} (stream_id BIGINT PRIMARY KEY, key_hash BIGINT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {RECORDED_TABLE}_key ON {RECORDED_TABLE} (key_hash, stream_id)",
]


@dataclass(frozen=True)
class AccountDataKey:
    user_id: str
    room_id: str | None
    account_data_type: str


def key_hash(key: AccountDataKey) -> int:
    """A signed 63-bit hash of the key (fits BIGINT on both engines)."""
    text = "\0".join((key.user_id, key.room_id or "", key.account_data_type))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def create_tables_txn(txn: LoggingTransaction) -> None:
    for statement in _CREATE:
        txn.execute(statement)


def read_row_txn(txn: LoggingTransaction, key: AccountDataKey) -> tuple[int, str] | None:
    """Synapse's current row for the key: (stream_id, content JSON), or None."""
    if key.room_id is None:
        txn.execute(
            "SELECT stream_id, content FROM account_data WHERE user_id = ? AND account_data_type = ?",
            (key.user_id, key.account_data_type),
        )
    else:
        txn.execute(
            "SELECT stream_id, content FROM room_account_data"
            " WHERE user_id = ? AND room_id = ? AND account_data_type = ?",
            (key.user_id, key.room_id, key.account_data_type),
        )
    row = txn.fetchone()
    return (int(row[0]), str(row[1])) if row is not None else None


def key_of(change: NewChange) -> AccountDataKey:
    return AccountDataKey(change.user_id, change.room_id, change.account_data_type)


#: Keys per readback statement.
_KEYS_PER_STATEMENT = 100


def _in_list(values: list[str]) -> str:
    return ", ".join("?" for _ in values)


def read_rows_txn(
    txn: LoggingTransaction, keys: set[AccountDataKey]
) -> dict[AccountDataKey, tuple[int, str]]:
    """Synapse's current rows for ``keys`` (missing keys have none): a few statements, not one per key."""
    found: dict[AccountDataKey, tuple[int, str]] = {}
    global_keys = sorted((k for k in keys if k.room_id is None), key=repr)
    room_keys = sorted((k for k in keys if k.room_id is not None), key=repr)
    for start in range(0, len(global_keys), _KEYS_PER_STATEMENT):
        chunk = global_keys[start : start + _KEYS_PER_STATEMENT]
        users = sorted({k.user_id for k in chunk})
        types = sorted({k.account_data_type for k in chunk})
        # A superset of the keys (users by types), narrowed below; the unique index serves the lookup.
        txn.execute(
            "SELECT user_id, account_data_type, stream_id, content FROM account_data"
            f" WHERE user_id IN ({_in_list(users)}) AND account_data_type IN ({_in_list(types)})",
            (*users, *types),
        )
        for user_id, data_type, stream_id, content in txn:
            found[AccountDataKey(str(user_id), None, str(data_type))] = (int(stream_id), str(content))
    for start in range(0, len(room_keys), _KEYS_PER_STATEMENT):
        chunk = room_keys[start : start + _KEYS_PER_STATEMENT]
        users = sorted({k.user_id for k in chunk})
        rooms = sorted({str(k.room_id) for k in chunk})
        types = sorted({k.account_data_type for k in chunk})
        txn.execute(
            "SELECT user_id, room_id, account_data_type, stream_id, content FROM room_account_data"
            f" WHERE user_id IN ({_in_list(users)}) AND room_id IN ({_in_list(rooms)})"
            f" AND account_data_type IN ({_in_list(types)})",
            (*users, *rooms, *types),
        )
        for user_id, room_id, data_type, stream_id, content in txn:
            found[AccountDataKey(str(user_id), str(room_id), str(data_type))] = (int(stream_id), str(content))
    return {key: row for key, row in found.items() if key in keys}


def claim_positions_txn(txn: LoggingTransaction, changes: list[NewChange]) -> list[int | None]:
    """The stream position each change claims (None: unknown), by the rules in the module docstring.

    ``changes`` are in recording order. Synapse stores content with the same JSON encoder as
    ``outbox.encode_content`` (compact, ASCII, keys in order), so equal content means equal text."""
    rows = read_rows_txn(txn, {key_of(c) for c in changes if c.kind == KIND_CHANGE})
    positions: list[int | None] = [None] * len(changes)
    claimed: set[AccountDataKey] = set()
    for i in reversed(range(len(changes))):
        change = changes[i]
        key = key_of(change)
        row = rows.get(key)
        if change.kind != KIND_CHANGE or key in claimed:
            continue
        # The key's last change in the batch decides, whether or not it matches (see the module docstring).
        claimed.add(key)
        if row is not None and row[1] == change.content:
            positions[i] = row[0]
    return positions


def insert_claims_txn(txn: LoggingTransaction, claims: list[tuple[int, AccountDataKey]]) -> None:
    """Records claimed positions; claiming a position again is a no-op (see the module docstring)."""
    for start in range(0, len(claims), _KEYS_PER_STATEMENT):
        chunk = claims[start : start + _KEYS_PER_STATEMENT]
        txn.execute(
            f"INSERT INTO {RECORDED_TABLE} (stream_id, key_hash) VALUES {', '.join('(?, ?)' for _ in chunk)}"
            " ON CONFLICT (stream_id) DO NOTHING",
            [value for stream_id, key in chunk for value in (stream_id, key_hash(key))],
        )


def get_state_txn(txn: LoggingTransaction, name: str) -> int | None:
    """A number kept in ``account_data_audit_meta``."""
    value = get_meta_txn(txn, name)
    return int(value) if value is not None else None


def set_state_txn(txn: LoggingTransaction, name: str, value: int) -> None:
    set_meta_txn(txn, name, str(value))


def prune_claims_txn(txn: LoggingTransaction, keep: int, advance_recovered_through: bool) -> int | None:
    """Keeps the newest ``keep`` claims once there are twice as many; returns the highest position dropped.

    Recovery looks at the claims above ``recovered_through``, so a claim may be dropped only if
    ``recovered_through`` is at or past it afterwards; otherwise the next recovery would take the dropped
    position for a change the outbox never got and record it again. So:

    - once this run's recovery is done (``advance_recovered_through``), pruning moves ``recovered_through``
      past the dropped claims, in the same transaction. That is safe because the writer records changes in
      the order their callbacks came: a change still unrecorded after ``keep`` newer ones were recorded would
      need its callback to be held up for all that time (the writer makes callbacks wait long before:
      max_pending);
    - before then (recovery pending, or failed and left to the next start), ``recovered_through`` must not
      move (the window up to this run's fence is still to be looked at), so nothing above it is dropped:
      claims wait for the recovery that will use them, which deletes them itself."""
    txn.execute(f"SELECT COUNT(*) FROM {RECORDED_TABLE}")
    row = txn.fetchone()
    if row is None or int(row[0]) <= 2 * keep:
        return None
    txn.execute(f"SELECT stream_id FROM {RECORDED_TABLE} ORDER BY stream_id DESC LIMIT 1 OFFSET ?", (keep,))
    cut = txn.fetchone()
    if cut is None:
        return None
    through = int(cut[0])
    current = get_state_txn(txn, STATE_RECOVERED_THROUGH)
    # (With no ``recovered_through`` recovery has never run: its first run audits from its fence on and looks
    # at no claim, so any may go.)
    if not advance_recovered_through and current is not None and current < through:
        through = current
        txn.execute(f"SELECT 1 FROM {RECORDED_TABLE} WHERE stream_id <= ? LIMIT 1", (through,))
        if txn.fetchone() is None:
            return None
    txn.execute(f"DELETE FROM {RECORDED_TABLE} WHERE stream_id <= ?", (through,))
    if advance_recovered_through and (current is None or current < through):
        set_state_txn(txn, STATE_RECOVERED_THROUGH, through)
    return through
