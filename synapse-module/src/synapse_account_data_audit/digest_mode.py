"""Digest mode: when the outbox holds a backlog, several changes go into one audit event.

The appservice asks for it (``sending.digest`` in its config) and says how, in its answers; the delivery loop
here decides the grouping when it fetches a batch and records it in the outbox (``digest_group``: the first
seq of the group, or ``ALONE``) before sending anything, so every resend, after any restart or crash, carries
exactly the same groups, and the appservice posts each as one event with the same transaction ID. Every row
fetched gets its decision, so a row once sent on its own (it may have been posted) is never put into a group
later. A group never changes once recorded and never straddles a batch.

A user with several changes in the batch, or with changes in a batch not yet answered, is *busy*: its changes
go into groups of their own. The other users are spread over ``lanes`` by a hash of their ID, and a group
holds the consecutive single changes of one lane. Groups that share no user are posted side by side by the
appservice without putting any user's changes out of order, and a group waits only for its own users' earlier
records: a user who writes thousands of changes never shares a group with anyone else, so nobody's record
waits behind that user's backlog. A gap notice or a (de)activation ends every open group.
"""

from __future__ import annotations

import zlib
from collections import Counter
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
    #: Groups formed side by side, each for its own share of the users.
    lanes: int = 1

    @property
    def batch_rows(self) -> int:
        """Rows a batch needs for every lane to fill a group."""
        return self.lanes * self.max_changes

    @staticmethod
    def from_answer(value: Any) -> DigestPolicy | None:
        """From the appservice's answer (``digest``); None if off or not understood."""
        if not isinstance(value, dict):
            return None
        numbers = [value.get(k) for k in ("min_backlog", "max_changes", "max_bytes")]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            return None
        min_backlog, max_changes, max_bytes = (int(n) for n in numbers)  # type: ignore[arg-type]
        lanes = value.get("lanes", 1)  # absent from appservices older than lanes
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            return None
        return DigestPolicy(min_backlog, max(2, max_changes), max(1, max_bytes), min(lanes, 64))


def lane_of(user_id: str, lanes: int) -> int:
    """A user's lane: the same in every process and after every restart (unlike Python's ``hash``)."""
    return zlib.crc32(user_id.encode("utf-8")) % lanes


#: A change counts at most this share of ``max_bytes`` in a group: the appservice cuts a large content's line
#: to fit (as it cuts a single change too large for one event), so a burst of large changes still goes out in
#: digests of up to this many, instead of one event each (which a user could use to hold everyone else's
#: records back).
LARGE_CHANGES_PER_GROUP = 8


def counted_bytes(row: OutboxRow, policy: DigestPolicy) -> int:
    """What a row counts against ``max_bytes``: its content's, type's and room ID's size (each is shown in the
    digest's line), at most a share of the group."""
    shown = len(row.content) + len(row.account_data_type) + len(row.room_id or "")
    return min(shown, max(1, policy.max_bytes // LARGE_CHANGES_PER_GROUP))


def plan_groups(
    rows: list[OutboxRow], policy: DigestPolicy, busy: frozenset[str] = frozenset()
) -> list[list[int]]:
    """New groups (their seqs, first seq first) among ``rows`` not yet grouped: each busy user's consecutive
    changes, and each lane's consecutive changes of the other users, greedily, up to ``max_changes`` and
    ``max_bytes`` (a large change counting as a share, see ``counted_bytes``); any other row (a gap notice, a
    deactivation, a row already decided) ends every open group; no groups of one. Busy: in ``busy`` (changes
    in a batch not yet answered) or with more than one change among ``rows``."""
    groups: list[list[int]] = []
    runs: dict[str | int, tuple[list[int], int]] = {}  # busy user or lane -> (seqs, content bytes)
    changes_of = Counter(row.user_id for row in rows if row.digest_group is None and row.kind in _GROUPABLE)

    def close(run: str | int) -> None:
        seqs, _ = runs.pop(run)
        if len(seqs) > 1:
            groups.append(seqs)

    for row in rows:
        if row.digest_group is not None or row.kind not in _GROUPABLE:
            for open_run in list(runs):
                close(open_run)
            continue
        run: str | int = (
            row.user_id
            if row.user_id in busy or changes_of[row.user_id] > 1
            else lane_of(row.user_id, policy.lanes)
        )
        seqs, size = runs.get(run, ([], 0))
        counted = counted_bytes(row, policy)
        if seqs and (len(seqs) >= policy.max_changes or size + counted > policy.max_bytes):
            close(run)
            seqs, size = [], 0
        runs[run] = ([*seqs, row.seq], size + counted)
    for run in list(runs):
        close(run)
    return sorted(groups)


def whole_group_prefixes(rows: list[OutboxRow], open_groups: frozenset[int] = frozenset()) -> list[int]:
    """The lengths (ascending, > 0) of the prefixes of ``rows`` that cut no group: every group with a row in
    the prefix has all its rows there (``open_groups`` have rows after ``rows``)."""
    last_index: dict[int, int] = {}
    for i, row in enumerate(rows):
        if row.digest_group:
            last_index[row.digest_group] = i
    lengths: list[int] = []
    reach = -1
    for i, row in enumerate(rows):
        group = row.digest_group
        if group:
            reach = max(reach, len(rows) if group in open_groups else last_index[group])
        if reach <= i:
            lengths.append(i + 1)
    return lengths


def fetch_for_delivery_txn(
    txn: LoggingTransaction,
    limit: int,
    max_bytes: int,
    after_seq: int,
    policy: DigestPolicy | None,
    busy: frozenset[str] = frozenset(),
    backlog_after: int | None = None,
) -> list[OutboxRow]:
    """The next batch, with digest groups decided and recorded where a backlog (the rows after
    ``backlog_after``, which defaults to ``after_seq``) calls for them (``busy``: the users with changes in
    batches not yet answered), and never ending inside a group (a group is delivered whole)."""
    rows = fetch_batch_txn(txn, limit, max_bytes, after_seq)
    if not rows:
        return rows
    if policy is not None:
        # The backlog includes the rows in batches not yet answered (``backlog_after``): with many batches in
        # flight, a burst's backlog is mostly there.
        txn.execute(
            f"SELECT COUNT(*) FROM {TABLE} WHERE seq > ?",
            (after_seq if backlog_after is None else min(after_seq, backlog_after),),
        )
        count = txn.fetchone()
        if count is not None and int(count[0]) > policy.min_backlog:
            groups = plan_groups(rows, policy, busy)
            for seqs in groups:
                marks = ",".join("?" * len(seqs))
                txn.execute(
                    f"UPDATE {TABLE} SET digest_group = ? WHERE seq IN ({marks}) AND digest_group IS NULL",
                    (seqs[0], *seqs),
                )
            group_of = {seq: seqs[0] for seqs in groups for seq in seqs}
            rows = [replace(r, digest_group=group_of[r.seq]) if r.seq in group_of else r for r in rows]
    txn.execute(
        f"UPDATE {TABLE} SET digest_group = ? WHERE seq >= ? AND seq <= ? AND digest_group IS NULL",
        (ALONE, rows[0].seq, rows[-1].seq),
    )
    rows = [r if r.digest_group is not None else replace(r, digest_group=ALONE) for r in rows]
    # Groups recorded by an earlier, larger fetch may go on after this one: send the rows before them, or,
    # if the very first group goes on, everything up to where every group it reaches has ended.
    lengths = whole_group_prefixes(rows, _groups_going_on_txn(txn, rows))
    if lengths:
        return rows[: lengths[-1]]
    return _through_whole_groups_txn(txn, after_seq, rows[-1].seq)


def _groups_going_on_txn(txn: LoggingTransaction, rows: list[OutboxRow]) -> frozenset[int]:
    """The groups among ``rows`` with rows after the last of them."""
    groups = sorted({r.digest_group for r in rows if r.digest_group})
    if not groups:
        return frozenset()
    marks = ",".join("?" * len(groups))
    txn.execute(
        f"SELECT DISTINCT digest_group FROM {TABLE} WHERE seq > ? AND digest_group IN ({marks})",
        (rows[-1].seq, *groups),
    )
    return frozenset(int(row[0]) for row in txn)


def _through_whole_groups_txn(txn: LoggingTransaction, after_seq: int, end: int) -> list[OutboxRow]:
    """The rows after ``after_seq`` up to the first point no group crosses, at ``end`` or beyond."""
    while True:
        txn.execute(
            f"SELECT MAX(seq) FROM {TABLE} WHERE digest_group IN (SELECT DISTINCT digest_group FROM {TABLE}"
            " WHERE seq > ? AND seq <= ? AND digest_group > 0)",
            (after_seq, end),
        )
        found = txn.fetchone()
        reach = int(found[0]) if found is not None and found[0] is not None else end
        if reach <= end:
            break
        end = reach
    txn.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE seq > ? AND seq <= ?", (after_seq, end))
    count = txn.fetchone()
    return fetch_batch_txn(txn, int(count[0]) if count is not None else 1, 1 << 62, after_seq)
