"""Writes recorded changes into the outbox off the user's request path, in the order they were recorded.

Why the callback does not await its insert: Synapse has already committed the account-data change when it
calls us, so awaiting our insert would not shorten the window in which a crash loses the audit record (it
is the time the insert takes either way); it would only hold the user's response for a database round trip
(about 3 ms measured, mostly the hop to Synapse's database thread pool). So a change waits in memory for
the few milliseconds until the writer commits it, and:

- one write runs at a time, so rows get their sequence numbers in the order the callbacks ran (a user's
  changes stay in order);
- everything pending when a write starts goes in one transaction (many concurrent users, one commit);
- a failed write is retried with backoff, the changes kept in order; past ``max_pending`` waiting changes
  the callback does wait for the writer, so a database outage cannot grow memory without bound;
- on Synapse shutdown, ``close`` flushes before the database pool closes, and leaves the clean-shutdown
  marker that lets the next start skip recovery's scan;
- on the account-data stream writer, crash recovery (``recovery``) runs first, before any change is
  written, so recovered changes come before this run's in the outbox.

Each write also claims the changes' stream positions (``claims``), in the same transaction.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge
from synapse.module_api import ModuleApi, make_deferred_yieldable
from twisted.internet import defer

from .delivery import backoff_delay
from .logsafe import describe
from .outbox import KIND_CHANGE, NewChange
from .recovery import RecoveryResult
from .store import AuditStore

logger = logging.getLogger(__name__)

PENDING = Gauge(
    "synapse_account_data_audit_pending_writes", "Account-data changes recorded but not yet in the outbox."
)
WRITE_FAILURES = Counter(
    "synapse_account_data_audit_write_failures_total", "Failed attempts to write changes into the outbox."
)
RECOVERED = Counter(
    "synapse_account_data_audit_recovered_total",
    "Account-data changes recovered from Synapse's tables after an unclean shutdown.",
)
GAP_NOTICES = Counter(
    "synapse_account_data_audit_gap_notices_total",
    "Gap notices: keys whose earlier values may have been overwritten before they could be recorded.",
)
UNACCOUNTED = Counter(
    "synapse_account_data_audit_unaccounted_positions_total",
    "Account-data stream positions that recovery could not account for (see the README).",
    ["attributed"],
)
RECOVERY_FAILURES = Counter(
    "synapse_account_data_audit_recovery_failures_total", "Failed attempts to run crash recovery."
)

#: Most rows in one insert transaction.
MAX_ROWS_PER_WRITE = 500
#: Attempts at crash recovery before new changes are written without it (it runs again at the next start).
RECOVERY_ATTEMPTS = 8


def new_change_id() -> str:
    return uuid.uuid4().hex


def _describe(result: RecoveryResult) -> str:
    keys = [
        f"{row.key.user_id} {row.key.account_data_type}"
        + (f" in {row.key.room_id}" if row.key.room_id else "")
        for row in result.recovered[:5]
    ]
    more = f" and {len(result.recovered) - 5} more" if len(result.recovered) > 5 else ""
    return ", ".join(keys) + more


class OutboxWriter:
    def __init__(
        self,
        api: ModuleApi,
        store: AuditStore,
        on_written: Callable[[], None],
        max_pending: int = 10_000,
        rand: random.Random | None = None,
        recovery_fence: int | None = None,
        stream_position: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._api = api
        self._store = store
        self._on_written = on_written
        self._max_pending = max_pending
        self._rand = rand or random.Random()
        self._pending: list[NewChange] = []
        self._running = False
        #: Callers waiting for the pending list to shrink (backpressure) or empty (flush).
        self._waiters: list[tuple[int, defer.Deferred[None]]] = []
        #: Synapse's account-data stream position at startup; None where this instance does not recover.
        self._fence = recovery_fence
        self._recovery_pending = recovery_fence is not None
        #: Synapse's account-data stream position now (for the clean-shutdown marker).
        self._stream_position = stream_position
        # Only the instance that recovers reads the clean-shutdown marker, so only it writes or clears one.
        store.marker_may_be_set = recovery_fence is not None
        #: The clean-shutdown marker's position, once ``close`` asked for it, until it is written.
        self._marker_due: int | None = None
        self._marker_waiters: list[defer.Deferred[None]] = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def record(
        self, user_id: str, room_id: str | None, account_data_type: str, content: str, kind: str = KIND_CHANGE
    ) -> None:
        """Queues one change; returns at once unless ``max_pending`` changes are already waiting."""
        self._pending.append(
            NewChange(
                change_id=new_change_id(),
                user_id=user_id,
                room_id=room_id,
                account_data_type=account_data_type,
                content=content,
                created_ts=self._api.get_current_time_msec(),
                kind=kind,
            )
        )
        PENDING.set(len(self._pending))
        self._start()
        if len(self._pending) > self._max_pending:
            await self._wait_until_at_most(self._max_pending)

    async def flush(self) -> None:
        """Resolves once every change recorded so far is in the outbox."""
        self._start()
        await self._wait_until_at_most(0)

    async def close(self) -> None:
        """At shutdown: flushes, then, on the instance that recovers and once this run's recovery is done,
        leaves the clean-shutdown marker (see ``recovery``) so the next start skips the scan.

        The marker's position is read first, then one round trip through the database pool lets changes that
        Synapse committed at or below it reach this callback (Synapse persists its stream position with one
        more query before it calls modules); the marker then commits in one transaction with every change
        pending, so it vouches only for what is in the outbox. A change recorded after it deletes it again
        (``AuditStore.marker_may_be_set``)."""
        await self.flush()
        if self._fence is None or not self._store.recovery_done:
            return
        position = self._stream_position()
        if position is None:
            return
        try:
            await self._store.sync()
        except Exception as e:
            # No marker: the next start scans, as after a crash.
            logger.warning("Could not leave the account-data audit clean-shutdown marker: %s", e)
            return
        # The writer loop writes it (one write at a time), with whatever is pending then.
        self._marker_due = position
        done: defer.Deferred[None] = defer.Deferred()
        self._marker_waiters.append(done)
        self._start()
        await make_deferred_yieldable(done)
        logger.info("Account-data audit: clean shutdown through stream position %d", position)

    def start(self) -> None:
        """Runs crash recovery now, if this instance does it (else the first change starts the writer)."""
        self._start()

    @property
    def recovering(self) -> bool:
        return self._recovery_pending

    def _start(self) -> None:
        if (self._pending or self._recovery_pending or self._marker_due is not None) and not self._running:
            self._running = True
            # On the reactor's next turn, not now: the request that recorded the change finishes writing its
            # response first instead of competing with the database thread for the GIL.
            self._api.delayed_background_call(0, self._write_all, desc="account_data_audit_write")

    async def _wait_until_at_most(self, count: int) -> None:
        if len(self._pending) <= count:
            return
        waiter: defer.Deferred[None] = defer.Deferred()
        self._waiters.append((count, waiter))
        # The writer fires it from its own logcontext; this restores the caller's (Synapse's rules).
        await make_deferred_yieldable(waiter)

    def _wake_waiters(self) -> None:
        ready = [w for w in self._waiters if len(self._pending) <= w[0]]
        self._waiters = [w for w in self._waiters if len(self._pending) > w[0]]
        for _, waiter in ready:
            waiter.callback(None)

    async def _recover(self, fence: int) -> None:
        """Crash recovery, retried with backoff; after ``RECOVERY_ATTEMPTS`` failures new changes are written
        without it (a change must not wait for ever) and it runs again at the next start."""
        for attempt in range(RECOVERY_ATTEMPTS):
            try:
                result = await self._store.recover(fence, new_change_id)
            except Exception as e:
                RECOVERY_FAILURES.inc()
                delay = backoff_delay(attempt, 0.1, 10.0, self._rand)
                logger.error(
                    "Account-data audit crash recovery failed (retry in %.1f s): %s", delay, describe(e)
                )
                await self._api.sleep(delay)
                continue
            if result is None:
                # Off for this run (Synapse's tables do not fit, logged at startup): no marker, no pruning
                # past recovered_through, as after failed attempts.
                return
            self._store.recovery_done = True
            self._report(result)
            if result.clean_through is not None:
                logger.info(
                    "Account-data audit recovery: nothing missing through stream position %d (Synapse "
                    "stopped cleanly: no scan needed)",
                    result.clean_through,
                )
            if result.recovered or result.gap_keys:
                self._on_written()
            return
        logger.error(
            "Account-data audit crash recovery failed %d times; recording new changes without it. It runs "
            "again at the next start.",
            RECOVERY_ATTEMPTS,
        )

    @staticmethod
    def _report(result: RecoveryResult) -> None:
        if result.first_start is not None:
            logger.info(
                "Account-data audit crash recovery set up: changes after stream position %d are covered",
                result.first_start,
            )
        if result.window is None:
            return
        after, through = result.window
        if result.recovered:
            RECOVERED.inc(len(result.recovered))
            logger.warning(
                "Recovered %d account-data changes that Synapse committed before it stopped uncleanly but "
                "the audit outbox never got (stream positions %d-%d): %s",
                len(result.recovered),
                after + 1,
                through,
                _describe(result),
            )
        if result.gap_keys:
            GAP_NOTICES.inc()
            logger.warning(
                "Audit gap: up to %d earlier account-data values of %d keys were overwritten before they "
                "could be recorded (Synapse keeps only the latest value); a gap notice is posted",
                result.lost,
                len(result.gap_keys),
            )
        if result.lost:
            UNACCOUNTED.labels(attributed="yes").inc(result.lost)
        if result.unattributed:
            UNACCOUNTED.labels(attributed="no").inc(result.unattributed)
            logger.info(
                "%d account-data stream positions in %d-%d are accounted for by no row and no recorded "
                "change (overwritten room tags, writes Synapse rolled back, or no-op deletions)",
                result.unattributed,
                after + 1,
                through,
            )
        if not (result.recovered or result.gap_keys):
            logger.info(
                "Account-data audit recovery: nothing missing in stream positions %d-%d", after + 1, through
            )

    async def _write_all(self) -> None:
        attempt = 0
        try:
            if self._fence is not None and self._recovery_pending:
                await self._recover(self._fence)
                self._recovery_pending = False
            while self._pending or self._marker_due is not None:
                batch = self._pending[:MAX_ROWS_PER_WRITE]
                # The marker goes with the last of the pending changes (or alone), never before any of them.
                marker = self._marker_due if len(batch) == len(self._pending) else None
                try:
                    await self._store.record(batch, clean_through=marker)
                except Exception as e:
                    # A write may have failed after it committed: the retry skips what is in already (see
                    # ``store.record_txn``).
                    WRITE_FAILURES.inc()
                    delay = backoff_delay(attempt, 0.1, 10.0, self._rand)
                    attempt += 1
                    logger.error(
                        "Could not write %d account-data changes into the audit outbox (retry in %.1f s): %s",
                        len(self._pending),
                        delay,
                        describe(e),  # not the error's whole text: it can hold a row's content
                    )
                    await self._api.sleep(delay)
                    continue
                attempt = 0
                del self._pending[: len(batch)]
                PENDING.set(len(self._pending))
                if marker is not None:
                    self._marker_due = None
                    waiters, self._marker_waiters = self._marker_waiters, []
                    for waiter in waiters:
                        waiter.callback(None)
                self._wake_waiters()
                if batch:
                    self._on_written()
        finally:
            # The loop only ends with nothing pending: a change recorded during a write is taken by the
            # loop's next turn.
            self._running = False


def register_shutdown_flush(api: ModuleApi, writer: OutboxWriter, reactor: Any = None) -> None:
    """Makes Synapse's shutdown wait for pending changes (a "before" trigger runs while the database pool is
    still open). The module API has no shutdown hook; Synapse runs on Twisted's global reactor. The flush
    runs as a background process so that the trigger's Deferred follows Synapse's logcontext rules (a leaked
    logcontext makes Synapse's next shutdown trigger fail, and shutdown hangs)."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: api.run_as_background_process("account_data_audit_flush", writer.close)
    )
