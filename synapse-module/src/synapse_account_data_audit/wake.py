"""Cutting the delivery backoff short when the appservice comes back.

After an outage the delivery loop may be in a backoff of up to ``backoff_max_seconds`` (60 s by default), so
delivery used to resume up to a minute after the appservice was back. The appservice now says it is back
(``POST /_synapse/client/account_data_audit/v1/wake``, see ``web``) and the loop retries at once.

The request reaches whichever instance serves that path (usually the main process), not necessarily the
delivering one, and workers share no memory: so the endpoint also stores a fresh value in the meta table
(``WAKE_NAME``), and the delivering instance reads it every second while it backs off (``WakePoller``; no
read at all while delivery works). On the delivering instance itself the endpoint wakes the loop directly.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from synapse.logging.context import PreserveLoggingContext
from synapse.module_api import make_deferred_yieldable, run_in_background
from synapse.storage.database import LoggingTransaction
from twisted.internet import defer

from .logsafe import describe
from .meta import get_meta_txn, set_meta_txn

logger = logging.getLogger(__name__)

WAKE_NAME = "wake_requested"
#: How often the delivering instance looks for a wake request while it backs off.
POLL_PERIOD_SECONDS = 1.0


class WakeSignal:
    """An interruptible sleep: ``sleep`` waits for the timer or for ``wake``, whichever comes first."""

    def __init__(self, sleep: Callable[[float], Any]) -> None:
        self._sleep = sleep
        self._waiter: defer.Deferred[bool] | None = None

    @property
    def sleeping(self) -> bool:
        return self._waiter is not None

    async def sleep(self, seconds: float) -> bool:
        """Sleeps up to ``seconds``; True if woken early."""
        waiter: defer.Deferred[bool] = defer.Deferred()
        self._waiter = waiter

        def timer_done(_: object) -> None:
            if not waiter.called:
                waiter.callback(False)

        # The timer is the API's sleep (tests count its delays); a wake leaves it to expire unheard.
        run_in_background(self._sleep, seconds).addBoth(timer_done)
        try:
            return await make_deferred_yieldable(waiter)
        finally:
            self._waiter = None

    def wake(self) -> bool:
        """Ends the current sleep, if any; True if there was one."""
        waiter = self._waiter
        if waiter is None or waiter.called:
            return False
        # Fired from the sentinel context, as Synapse's log contexts require: the sleeper restores its own.
        with PreserveLoggingContext():
            waiter.callback(True)
        return True


def request_wake_txn(txn: LoggingTransaction) -> None:
    set_meta_txn(txn, WAKE_NAME, secrets.token_hex(8))


class WakePoller:
    """On the delivering instance: wakes delivery when another instance stored a wake request."""

    def __init__(
        self, api: Any, store: Any, is_backing_off: Callable[[], bool], wake: Callable[[], None]
    ) -> None:
        self._api = api
        self._store = store
        self._is_backing_off = is_backing_off
        self._wake = wake
        self._seen: str | None = None
        self._read_once = False

    async def check(self) -> None:
        """Run every ``POLL_PERIOD_SECONDS``; reads the database only while delivery backs off (and once at
        startup, to know the value a later request changes)."""
        if self._read_once and not self._is_backing_off():
            return
        try:
            await self._store.ensure_tables()
            value = await self._api.run_db_interaction("account_data_audit_wake", get_meta_txn, WAKE_NAME)
        except Exception as e:
            logger.warning("Account-data audit: could not check for a wake request: %s", describe(e))
            return
        changed = self._read_once and value != self._seen
        self._seen, self._read_once = value, True
        if changed:
            logger.info("Account-data audit: the appservice is back (wake request): retrying delivery now")
            self._wake()
