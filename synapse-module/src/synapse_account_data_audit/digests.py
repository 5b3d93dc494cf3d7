"""Digest mode: when the outbox holds a backlog, several consecutive changes go into one audit event.

The appservice asks for it (``sending.digest`` in its config) and says how, in its answers; the delivery loop
here decides the grouping when it fetches a batch and records it in the outbox (``digest_group``: the first
seq of the group, or ``ALONE``) before sending anything, so every resend, after any restart or crash, carries
exactly the same groups, and the appservice posts each as one event with the same transaction ID. Every row
fetched gets its decision, so a row once sent on its own (it may have been posted) is never put into a group
later. A group never changes once recorded and never straddles a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from synapse.storage.database import LoggingTransaction

from .outbox import KIND_CHANGE, KIND_RECOVERED, TABLE, OutboxRow, fetch_batch_txn

_GROUPABLE = frozenset({KIND_CHANGE, KIND_RECOVERED})

#: ``digest_group`` of a row decided to go on its own (seqs start at 1).
ALONE = 0


@dataclass(frozen=True)
class DigestPolicy:
    #: Groups form only while more changes than this wait in the outbox.
    min_backlog: int
    max_changes: int
    #: Content bytes per group (the appservice keeps the event under Synapse's 64 KiB).
    max_bytes: int

    @staticmethod
    def from_answer(value: Any) -> DigestPolicy | None:
        """From the appservice's answer (``digest``); None if off or not understood."""
        if not isinstance(value, dict):
            return None
        numbers = [value.get(k) for k in ("min_backlog", "max_changes", "max_bytes")]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            return None
        min_backlog, max_changes, max_bytes = (int(n) for n in numbers)  # type: ignore[arg-type]
        return DigestPolicy(min_backlog, max(2, max_changes), max(1, max_bytes))


def plan_groups(rows: list[OutboxRow], policy: DigestPolicy) -> list[tuple[int, int]]:
    """New groups (first seq, last seq) among ``rows`` not yet grouped: consecutive changes, greedily, up to
    ``max_changes`` and ``max_bytes``; a gap notice or deactivation ends a group; no groups of one."""
    groups: list[tuple[int, int]] = []
    run: list[OutboxRow] = []
    size = 0
    for row in [*rows, None]:
        groupable = row is not None and row.digest_group is None and row.kind in _GROUPABLE
        full = row is not None and (
            len(run) >= policy.max_changes or size + len(row.content) > policy.max_bytes
        )
        if run and (not groupable or full):
            if len(run) > 1:
                groups.append((run[0].seq, run[-1].seq))
            run, size = [], 0
        if groupable and row is not None:
            run.append(row)
            size += len(row.content)
    return groups


def fetch_for_delivery_txn(
    txn: LoggingTransaction, limit: int, max_bytes: int, after_seq: int, policy: DigestPolicy | None
) -> list[OutboxRow]:
    """The next batch, with digest groups decided and recorded where a backlog calls for them, and never
    ending inside a group (a group is delivered whole)."""
    rows = fetch_batch_txn(txn, limit, max_bytes, after_seq)
    if not rows:
        return rows
    if policy is not None:
        txn.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE seq > ?", (after_seq,))
        count = txn.fetchone()
        if count is not None and int(count[0]) > policy.min_backlog:
            groups = plan_groups(rows, policy)
            for first, end in groups:
                txn.execute(
                    f"UPDATE {TABLE} SET digest_group = ? WHERE seq >= ? AND seq <= ?"
                    " AND digest_group IS NULL",
                    (first, first, end),
                )
            group_of = {seq: first for first, end in groups for seq in range(first, end + 1)}
            rows = [replace(r, digest_group=group_of[r.seq]) if r.seq in group_of else r for r in rows]
    txn.execute(
        f"UPDATE {TABLE} SET digest_group = ? WHERE seq >= ? AND seq <= ? AND digest_group IS NULL",
        (ALONE, rows[0].seq, rows[-1].seq),
    )
    rows = [r if r.digest_group is not None else replace(r, digest_group=ALONE) for r in rows]
    last = rows[-1]
    if last.digest_group and _group_goes_on(txn, last):
        # Cut off inside a group (a group recorded by an earlier attempt, and a smaller batch now): send the
        # rows before it, or the whole group if it is all there is.
        rows = [r for r in rows if r.digest_group != last.digest_group] or _whole_group_txn(
            txn, last.digest_group
        )
    return rows


def _group_goes_on(txn: LoggingTransaction, last: OutboxRow) -> bool:
    txn.execute(
        f"SELECT 1 FROM {TABLE} WHERE seq > ? AND digest_group = ? LIMIT 1", (last.seq, last.digest_group)
    )
    return txn.fetchone() is not None


def _whole_group_txn(txn: LoggingTransaction, group: int) -> list[OutboxRow]:
    txn.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE digest_group = ?", (group,))
    count = txn.fetchone()
    return fetch_batch_txn(txn, int(count[0]) if count is not None else 1, 1 << 62, group - 1)
