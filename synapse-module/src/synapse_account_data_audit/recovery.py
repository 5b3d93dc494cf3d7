"""Crash recovery: account-data changes that Synapse committed but the outbox never got.

Synapse commits a change before it calls the module, and the writer commits it into the outbox a few
milliseconds later; a hard crash (SIGKILL, power loss) in between loses the audit record, and no callback
can prevent that. So on every start, on the account-data stream writer, the writer first compares Synapse's
own tables with what it claimed (``claims``), before it writes anything else:

- The *fence* is Synapse's account-data stream position when the module was loaded, before Synapse served a
  request: every position up to it was written by an earlier run, every later one by this run. Recovery
  looks only at ``(recovered_through, fence]``, so it never records a change whose callback this run will
  see (no change is recorded twice), and the window is the earlier run's whole life, not "the positions
  after the highest one recorded" (Synapse commits and calls back concurrent changes out of order).
- A row in that window whose position nobody claimed is a change the outbox never got: it is recorded,
  marked recovered, with the content Synapse holds (the change's own value: the row is its latest).
- Synapse keeps only a key's latest value. A position in the window that no row, tag revision or claim
  accounts for is a change that was overwritten, a room-tag change that was overwritten, or a write Synapse
  rolled back; which key it was is not stored anywhere. When such positions lie between a recovered key's
  last recorded change and its current value, earlier values of that key may have been lost, and one gap
  notice names those keys and how many positions are unaccounted for. Positions outside every such range
  cannot be attributed; they are logged and counted, not posted.

All of it (the recovered rows, the gap notice, the claims, the new ``recovered_through``) commits in one
transaction: a crash during recovery leaves nothing half done, and the next start does it again.

The scan reads Synapse's tables by ``stream_id`` alone, which no index of Synapse's serves: its cost grows
with the tables, not with the window. So it runs only when it must: a clean shutdown leaves a *clean-shutdown
marker* (``CLEAN_SHUTDOWN``: the stream position through which the outbox holds everything, written by the
writer's last transaction together with the last changes), and a start whose fence is that position skips the
scan. The marker is deleted by the start that reads it and by the first write after it, so a later crash is
never taken for a clean stop. After a crash: one scan per table, once.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from dataclasses import dataclass

from synapse.storage.database import LoggingTransaction

from .claims import (
    RECORDED_TABLE,
    STATE_RECOVERED_THROUGH,
    AccountDataKey,
    get_state_txn,
    insert_claims_txn,
    key_hash,
    read_row_txn,
    set_state_txn,
)
from .meta import META_TABLE, get_meta_txn
from .outbox import KIND_GAP, KIND_RECOVERED, NewChange, insert_many_txn

#: The clean-shutdown marker (see the module docstring), in ``account_data_audit_meta``.
CLEAN_SHUTDOWN = "clean_shutdown"


def clear_clean_shutdown_txn(txn: LoggingTransaction) -> None:
    txn.execute(f"DELETE FROM {META_TABLE} WHERE name = ?", (CLEAN_SHUTDOWN,))


@dataclass(frozen=True)
class StoredRow:
    """A row of Synapse's account-data tables: a key and the position of its latest change."""

    stream_id: int
    key: AccountDataKey


@dataclass(frozen=True)
class GapKey:
    key: AccountDataKey
    #: Positions between the key's last recorded change and its current value that nothing accounts for.
    unaccounted: int
    #: True if the key's latest value was recovered; False if it changed again after the restart.
    recovered: bool


@dataclass(frozen=True)
class RecoveryPlan:
    recover: list[StoredRow]
    gap_keys: list[GapKey]
    #: Distinct unaccounted positions within the gap keys' ranges.
    lost: int
    #: Unaccounted positions in the window that no key's range covers.
    unattributed: int


@dataclass(frozen=True)
class RecoveryResult:
    #: The window looked at, or None if there was nothing to do (first start, or nothing new).
    window: tuple[int, int] | None
    recovered: list[StoredRow]
    gap_keys: list[GapKey]
    lost: int
    unattributed: int
    #: Set on the first start with crash recovery: the position the audit trail starts from.
    first_start: int | None = None
    #: Set when the scan was skipped after a clean shutdown: the position the marker vouched for.
    clean_through: int | None = None


def _unaccounted_ranges(explained: list[int], after: int, fence: int) -> list[tuple[int, int]]:
    """Inclusive ranges of positions in (after, fence] not in ``explained`` (sorted, deduplicated)."""
    ranges: list[tuple[int, int]] = []
    previous = after
    for position in explained:
        if position > fence:
            break
        if position > previous + 1:
            ranges.append((previous + 1, position - 1))
        previous = max(previous, position)
    if fence > previous:
        ranges.append((previous + 1, fence))
    return ranges


def _count_within(ranges: list[tuple[int, int]], low: int, high: int) -> int:
    """How many positions of ``ranges`` lie strictly between ``low`` and ``high``."""
    return sum(max(0, min(end, high - 1) - max(start, low + 1) + 1) for start, end in ranges)


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(intervals):
        if merged and low < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def plan_recovery(
    rows: list[StoredRow],
    tag_positions: list[int],
    recorded: dict[int, int],
    after: int,
    fence: int,
) -> RecoveryPlan:
    """Decides what to recover. ``rows``: Synapse's rows with positions above ``after``; ``recorded``: the
    claimed positions above ``after`` with their key hashes."""
    recover = sorted(
        (row for row in rows if row.stream_id <= fence and row.stream_id not in recorded),
        key=lambda row: row.stream_id,
    )
    explained = sorted(set(recorded) | {row.stream_id for row in rows} | set(tag_positions))
    unaccounted = _unaccounted_ranges([p for p in explained if p > after], after, fence)

    by_key: dict[int, list[int]] = {}
    for position, hashed in recorded.items():
        by_key.setdefault(hashed, []).append(position)
    for positions in by_key.values():
        positions.sort()

    def last_recorded_before(key: AccountDataKey, position: int) -> int:
        positions = by_key.get(key_hash(key), [])
        i = bisect.bisect_left(positions, position)
        return positions[i - 1] if i > 0 else after

    gap_keys: list[GapKey] = []
    intervals: list[tuple[int, int]] = []
    # Recovered keys, then keys that changed again after the restart (before recovery read them): for both,
    # a lost earlier value would lie between the last recorded change and the current one (or the fence).
    candidates = [(row, True) for row in recover] + [
        (row, False) for row in sorted(rows, key=lambda r: r.stream_id) if row.stream_id > fence
    ]
    for row, recovered in candidates:
        low = last_recorded_before(row.key, row.stream_id)
        high = row.stream_id if recovered else fence + 1
        count = _count_within(unaccounted, low, high)
        if count:
            gap_keys.append(GapKey(row.key, count, recovered))
            intervals.append((low, high))
    lost = sum(_count_within(unaccounted, low, high) for low, high in _merge(intervals))
    total = sum(end - start + 1 for start, end in unaccounted)
    return RecoveryPlan(recover, gap_keys, lost, total - lost)


def scan_rows_txn(txn: LoggingTransaction, after: int) -> list[StoredRow]:
    """Synapse's account-data rows whose latest change is above ``after``. Synapse has no index on
    stream_id alone, so this reads both tables once per start, in the background."""
    txn.execute(
        "SELECT stream_id, user_id, account_data_type FROM account_data WHERE stream_id > ?", (after,)
    )
    rows = [StoredRow(int(s), AccountDataKey(str(u), None, str(t))) for s, u, t in txn]
    txn.execute(
        "SELECT stream_id, user_id, room_id, account_data_type FROM room_account_data WHERE stream_id > ?",
        (after,),
    )
    rows.extend(StoredRow(int(s), AccountDataKey(str(u), str(r), str(t))) for s, u, r, t in txn)
    return rows


def scan_tag_positions_txn(txn: LoggingTransaction, after: int) -> list[int]:
    """Room-tag changes share the account-data stream; their latest positions account for themselves."""
    txn.execute("SELECT stream_id FROM room_tags_revisions WHERE stream_id > ?", (after,))
    return [int(row[0]) for row in txn]


def load_recorded_txn(txn: LoggingTransaction, after: int) -> dict[int, int]:
    txn.execute(f"SELECT stream_id, key_hash FROM {RECORDED_TABLE} WHERE stream_id > ?", (after,))
    return {int(s): int(h) for s, h in txn}


def gap_details(plan: RecoveryPlan, window: tuple[int, int]) -> str:
    """The gap notice as the delivery protocol carries it (see README, "Crash recovery")."""
    return json.dumps(
        {
            "lost": plan.lost,
            "keys": [
                {
                    "user_id": gap.key.user_id,
                    "room_id": gap.key.room_id,
                    "type": gap.key.account_data_type,
                    "unaccounted": gap.unaccounted,
                    "latest": "recovered" if gap.recovered else "changed_after_restart",
                }
                for gap in plan.gap_keys
            ],
            "stream_positions": {"after": window[0], "through": window[1]},
        },
        separators=(",", ":"),
    )


def recover_txn(
    txn: LoggingTransaction,
    fence: int,
    now_ms: int,
    new_id: Callable[[], str],
    key: bytes,
) -> RecoveryResult:
    """Runs recovery up to ``fence`` (see the module docstring); one transaction. ``key``: the keyed-digest
    key the new outbox rows are sealed with (see ``outbox.insert_many_txn``)."""
    after = get_state_txn(txn, STATE_RECOVERED_THROUGH)
    marker = get_meta_txn(txn, CLEAN_SHUTDOWN)
    if marker is not None:
        # Read once: from here on this run writes, and a crash of this run must not look clean.
        clear_clean_shutdown_txn(txn)
    if after is not None and after < fence and marker is not None and int(marker) >= fence:
        # The last run stopped cleanly with everything through its last position in the outbox, and nothing
        # reached the stream since: the window holds nothing missing, and the scan would find nothing.
        set_state_txn(txn, STATE_RECOVERED_THROUGH, fence)
        txn.execute(f"DELETE FROM {RECORDED_TABLE} WHERE stream_id <= ?", (fence,))
        return RecoveryResult(None, [], [], 0, 0, clean_through=int(marker))
    if after is None or after >= fence:
        # First start with this version: audit from now on, not Synapse's history. (after > fence: the
        # stream position was read low at startup; nothing below ``after`` is ever looked at again.)
        if after is None:
            set_state_txn(txn, STATE_RECOVERED_THROUGH, fence)
            return RecoveryResult(None, [], [], 0, 0, first_start=fence)
        return RecoveryResult(None, [], [], 0, 0)

    rows = scan_rows_txn(txn, after)
    plan = plan_recovery(
        rows, scan_tag_positions_txn(txn, after), load_recorded_txn(txn, after), after, fence
    )
    new_rows: list[NewChange] = []
    if plan.gap_keys:
        new_rows.append(
            NewChange(
                new_id(), "", None, "", "{}", now_ms, kind=KIND_GAP, details=gap_details(plan, (after, fence))
            )
        )
    recovered: list[StoredRow] = []
    for row in plan.recover:
        current = read_row_txn(txn, row.key)
        if current is None or current[0] != row.stream_id:
            # Changed since the scan (PostgreSQL reads committed rows per statement): that change is this
            # run's, and its callback records it.
            continue
        recovered.append(row)
        new_rows.append(
            NewChange(
                new_id(),
                row.key.user_id,
                row.key.room_id,
                row.key.account_data_type,
                current[1],
                now_ms,
                kind=KIND_RECOVERED,
                stream_id=row.stream_id,
            )
        )
    insert_many_txn(txn, key, new_rows)
    insert_claims_txn(txn, [(row.stream_id, row.key) for row in recovered])
    set_state_txn(txn, STATE_RECOVERED_THROUGH, fence)
    # Claims at or below the fence are never looked at again.
    txn.execute(f"DELETE FROM {RECORDED_TABLE} WHERE stream_id <= ?", (fence,))
    return RecoveryResult((after, fence), recovered, plan.gap_keys, plan.lost, plan.unattributed)
