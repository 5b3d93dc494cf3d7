"""Polls Synapse's tables for the account data its callback never reports: room tags and push rules.

Synapse stores both apart from other account data and calls no module callback for them (README, "Room tags
and push rules"). The module API offers ``run_db_interaction`` and ``looping_background_call``, so this
polls their tables (``tags``, ``push_rules``) every ``poll_tags_push_rules_seconds``:

- On the instance that writes the stream (tags: the account-data stream writer; push rules: the push-rules
  stream writer), where Synapse's persisted stream position is in memory. A poll first compares it with the
  position of its last poll and queries nothing when it has not moved, so an idle server costs no query at
  all. (``room_tags_revisions`` has no index on ``stream_id``: the tags query is a scan, run only when the
  account-data stream moved.) The position also bounds the query: every ID at or below it has committed.
- Each poll reads the rows after the position kept in the module's state (``pollstate``), builds the records
  and, in that one transaction, writes them into the outbox (the hash chain, as any change) and moves the
  position: exactly once across restarts and crashes.
- The records are ordinary changes (``kind`` change, ``source`` tags or push_rules), so the audit policy,
  the chain, digest mode and ``verify`` treat them like any other.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from synapse.module_api import ModuleApi
from synapse.storage.database import LoggingTransaction

from . import push_rules, tags
from .dbutil import table_columns_txn
from .keyed_digest import keyed_digest_key_txn
from .logsafe import describe
from .outbox import insert_many_txn
from .pollstate import PollState, load_state_txn, read_limit, save_state_txn
from .records import NewChange
from .store import AuditStore
from .synapse_state import account_data_stream_position, account_data_writers

logger = logging.getLogger(__name__)

POLLED = Counter(
    "synapse_account_data_audit_polled_total",
    "Changes found by polling Synapse's tables (room tags, push rules) and written to the outbox.",
    ["source"],
)
POLL_FAILURES = Counter(
    "synapse_account_data_audit_poll_failures_total", "Failed polls of Synapse's tables.", ["source"]
)

#: New rows one poll transaction takes (more are taken by the next transaction of the same poll).
BATCH = 500


def push_rules_stream_position(api: ModuleApi) -> int | None:
    """Synapse's persisted push-rules stream position (``None`` if unknown). No module API has it."""
    try:
        store: Any = api._store
        position = store.get_max_push_rules_stream_id()
    except Exception as e:
        logger.error("Cannot read Synapse's push-rules stream position: %r", e)
        return None
    return position if isinstance(position, int) and not isinstance(position, bool) else None


def push_rules_writers(api: ModuleApi) -> list[str] | None:
    try:
        hs: Any = api._hs
        return [str(w) for w in hs.config.worker.writers.push_rules]
    except Exception as e:
        logger.error("Cannot read Synapse's push-rules stream writers: %r", e)
        return None


@dataclass(frozen=True)
class StreamSource:
    """One of Synapse's tables that the poller follows (``tags`` or ``push_rules`` provide the parts)."""

    name: str
    #: What it audits, for log lines.
    what: str
    state_name: str
    required: dict[str, tuple[str, ...]]
    create_tables_txn: Callable[[LoggingTransaction], None]
    max_position_txn: Callable[[LoggingTransaction], int]
    read_txn: Callable[[LoggingTransaction, int, int | None, int], list[Any]]
    changes_txn: Callable[[LoggingTransaction, list[Any], int, Callable[[], str]], list[NewChange]]
    #: Synapse's persisted position of the stream (None: unknown, then every poll queries).
    position: Callable[[ModuleApi], int | None]
    writers: Callable[[ModuleApi], list[str] | None]


TAGS = StreamSource(
    tags.SOURCE,
    "room tags (m.tag)",
    tags.STATE_NAME,
    tags.REQUIRED,
    tags.create_tables_txn,
    tags.max_position_txn,
    tags.read_txn,
    tags.changes_txn,
    account_data_stream_position,  # tags take their IDs from the account-data stream
    account_data_writers,
)
PUSH_RULES = StreamSource(
    push_rules.SOURCE,
    "push rules (m.push_rules)",
    push_rules.STATE_NAME,
    push_rules.REQUIRED,
    push_rules.create_tables_txn,
    push_rules.max_position_txn,
    push_rules.read_txn,
    push_rules.changes_txn,
    push_rules_stream_position,
    push_rules_writers,
)


def sources_for(api: ModuleApi, sources: tuple[StreamSource, ...] = (TAGS, PUSH_RULES)) -> list[StreamSource]:
    """The sources this instance polls: those whose (first) stream writer it is; the main process where the
    writers cannot be read."""
    instance = api.worker_name or "master"
    return [s for s in sources if (s.writers(api) or ["master"])[0] == instance]


def poll_txn(
    txn: LoggingTransaction,
    source: StreamSource,
    start: int | None,
    upto: int | None,
    batch: int,
    now_ms: int,
    new_id: Callable[[], str],
) -> tuple[int, bool]:
    """One poll of ``source``: records what is new and moves the position, in this one transaction.
    Returns (changes written, whether more rows may be waiting). At the first start (no position kept yet)
    it begins at ``start`` (the stream's position when the module was loaded), or at the newest row: the
    trail covers changes from then on, not Synapse's earlier history."""
    state = load_state_txn(txn, source.state_name)
    first_start = state is None
    if state is None:
        through = start if start is not None else source.max_position_txn(txn)
        state = PollState(through, floor=through)
    limit = read_limit(batch)
    rows = source.read_txn(txn, state.low, upto, limit)
    new = [row for row in rows if state.is_new(row[0])]
    changes = source.changes_txn(txn, new, now_ms, new_id) if new else []
    if changes:
        insert_many_txn(txn, keyed_digest_key_txn(txn), changes)
    if new or first_start:
        save_state_txn(txn, source.state_name, state.advanced(row[0] for row in new))
    return len(changes), len(rows) == limit


def check_tables_txn(txn: LoggingTransaction, sources: list[StreamSource]) -> dict[str, list[str]]:
    """Creates the module's tables for ``sources`` and checks Synapse's: {source name: problems}."""
    problems: dict[str, list[str]] = {}
    for source in sources:
        found_problems: list[str] = []
        for table, needed in source.required.items():
            found = table_columns_txn(txn, table)
            missing = [column for column in needed if column not in found]
            if not found:
                found_problems.append(f"no table {table}")
            elif missing:
                found_problems.append(f"table {table} has no column {', '.join(missing)}")
        problems[source.name] = found_problems
        if not found_problems:
            source.create_tables_txn(txn)
    return problems


def synapse_version() -> str:
    try:
        return importlib.metadata.version("matrix-synapse")
    except importlib.metadata.PackageNotFoundError:
        return "(unknown version)"


class Poller:
    def __init__(
        self,
        api: ModuleApi,
        store: AuditStore,
        sources: list[StreamSource],
        on_written: Callable[[], None],
        new_id: Callable[[], str],
        batch: int = BATCH,
    ) -> None:
        self._api = api
        self._store = store
        self._sources = sources
        self._on_written = on_written
        self._new_id = new_id
        self._batch = batch
        #: Each stream's position when the module was loaded (before Synapse serves requests): where a first
        #: start audits from.
        self._start = {source.name: source.position(api) for source in sources}
        #: Each stream's position at its last successful poll: a poll that finds it unchanged queries nothing.
        self._seen: dict[str, int] = {}
        self._ready = False
        self._running = False

    @property
    def sources(self) -> list[StreamSource]:
        return list(self._sources)

    async def _setup(self) -> None:
        await self._store.ensure_tables()
        problems: dict[str, list[str]] = await self._api.run_db_interaction(
            "account_data_audit_poll_setup", check_tables_txn, self._sources
        )
        for source in list(self._sources):
            if problems.get(source.name):
                self._sources.remove(source)
                logger.error(
                    "Account-data audit: Synapse %s's database does not have what the module reads for %s: "
                    "%s. They are not audited on this Synapse version (tested: 1.163.x); everything else is.",
                    synapse_version(),
                    source.what,
                    "; ".join(problems[source.name]),
                )
        self._ready = True

    async def poll(self) -> None:
        """One round over the sources (run by a looping call; a round still running skips the next)."""
        if self._running:
            return
        self._running = True
        try:
            if not self._ready:
                await self._setup()
            for source in self._sources:
                await self._poll(source)
        except Exception as e:
            logger.error("Account-data audit: polling Synapse's tables failed: %s", describe(e))
        finally:
            self._running = False

    async def _poll(self, source: StreamSource) -> None:
        position = source.position(self._api)
        if position is not None and self._seen.get(source.name) == position:
            return  # nothing written to the stream since the last poll
        written = 0
        try:
            more = True
            while more:
                count, more = await self._api.run_db_interaction(
                    f"account_data_audit_poll_{source.name}",
                    poll_txn,
                    source,
                    self._start.get(source.name),
                    position,
                    self._batch,
                    self._api.get_current_time_msec(),
                    self._new_id,
                )
                written += count
        except Exception as e:
            POLL_FAILURES.labels(source=source.name).inc()
            # Not the error's whole text: it can hold a row's content.
            logger.error("Account-data audit: polling %s failed (retried): %s", source.what, describe(e))
        else:
            if position is not None:
                self._seen[source.name] = position
        if written:
            POLLED.labels(source=source.name).inc(written)
            self._on_written()
