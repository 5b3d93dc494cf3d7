"""The outbox's health as every instance sees it, read from the database.

The outbox gauges used to be set by the delivering instance alone, so in a worker deployment the main process
(where admins often look first) read 0 while changes piled up behind a stopped delivery. Here every instance
reads the depth, the oldest undelivered change's time and the last acknowledged delivery's time (kept in the
meta table by the delivery transaction, see ``store.delete_delivered_txn``) every ``READ_PERIOD_SECONDS``; the
age gauge is computed when scraped, so it grows between reads. When changes have waited longer than
``stall_warning_seconds`` and nothing was delivered for as long, every instance logs it (rate-limited), so the
stop is in every instance's log whichever one an admin reads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge
from synapse.storage.database import LoggingTransaction

from . import outbox
from .logsafe import describe
from .meta import get_meta_txn

logger = logging.getLogger(__name__)

#: Where the delivery transaction stores when the appservice last acknowledged a batch (ms since the epoch).
LAST_DELIVERY_NAME = "last_delivery_ts"
#: How often each instance reads the outbox's stats (one small transaction).
READ_PERIOD_SECONDS = 5.0
#: The shortest time between two "delivery stopped" warnings of one instance.
WARN_EVERY_SECONDS = 300.0


@dataclass
class OutboxHealth:
    depth: int = 0
    #: created_ts (ms) of the oldest row, None when empty.
    oldest_ts: int | None = None
    #: When a batch was last acknowledged (ms), None if never.
    last_delivery_ts: int | None = None
    #: When this instance last read these (ms), None before the first read.
    read_ts: int | None = None

    def oldest_age_seconds(self, now: float | None = None) -> float:
        if self.oldest_ts is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.oldest_ts / 1000)

    def stalled_for(self, threshold_seconds: float, now: float | None = None) -> float | None:
        """How long delivery has been stopped with changes waiting (seconds), if past the threshold."""
        if self.depth == 0 or self.oldest_ts is None:
            return None
        now = time.time() if now is None else now
        waiting = self.oldest_age_seconds(now)
        since_delivery = now - self.last_delivery_ts / 1000 if self.last_delivery_ts is not None else waiting
        stalled = min(waiting, since_delivery)
        return stalled if stalled > threshold_seconds else None

    def to_json(self, delivery_instance: str, stall_seconds: float, instance: str) -> dict[str, Any]:
        stalled = self.stalled_for(stall_seconds)
        return {
            "status": "stalled" if stalled is not None else "ok",
            "instance": instance,
            "delivery_instance": delivery_instance,
            "outbox_depth": self.depth,
            "oldest_undelivered_age_seconds": round(self.oldest_age_seconds(), 3),
            "last_delivery_ts": self.last_delivery_ts,
            "read_ts": self.read_ts,
        }


#: This process's view (module-level like the gauges, which are per process too).
HEALTH = OutboxHealth()

OUTBOX_DEPTH = Gauge(
    "synapse_account_data_audit_outbox_depth",
    "Account-data changes waiting in the outbox (read from the database by every instance).",
)
OLDEST_AGE = Gauge(
    "synapse_account_data_audit_oldest_undelivered_age_seconds",
    "Age of the oldest change still in the outbox (0 when empty; read from the database by every instance).",
)
OLDEST_AGE.set_function(lambda: HEALTH.oldest_age_seconds())
LAST_DELIVERY = Gauge(
    "synapse_account_data_audit_last_delivery_timestamp_seconds",
    "When the appservice last acknowledged a batch (Unix time; 0 if never).",
)
LAST_DELIVERY.set_function(lambda: (HEALTH.last_delivery_ts or 0) / 1000)


def observe(depth: int, oldest_ts: int | None, now_ms: int) -> None:
    """Records a fresh reading (the delivery loop calls this too, after each batch)."""
    HEALTH.depth, HEALTH.oldest_ts, HEALTH.read_ts = depth, oldest_ts, now_ms
    OUTBOX_DEPTH.set(depth)


def read_health_txn(txn: LoggingTransaction) -> tuple[int, int | None, int | None]:
    depth, oldest = outbox.stats_txn(txn)
    last = get_meta_txn(txn, LAST_DELIVERY_NAME)
    return depth, oldest, int(last) if last is not None else None


class StatsReader:
    """Runs on every instance: refreshes ``HEALTH`` from the database and warns when delivery stopped."""

    def __init__(self, api: Any, store: Any, delivery_instance: str, stall_warning_seconds: float) -> None:
        self._api = api
        self._store = store
        self._delivery_instance = delivery_instance
        self._stall = stall_warning_seconds
        self._last_warning: float | None = None

    async def read(self) -> None:
        """One read; never raises (Synapse's looping call runs it every ``READ_PERIOD_SECONDS``)."""
        try:
            await self._store.ensure_tables()
            depth, oldest, last = await self._api.run_db_interaction(
                "account_data_audit_health", read_health_txn
            )
        except Exception as e:
            logger.warning(
                "Account-data audit: could not read the outbox's health (retried): %s", describe(e)
            )
            return
        now_ms = int(self._api.get_current_time_msec())
        observe(depth, oldest, now_ms)
        HEALTH.last_delivery_ts = last
        self.warn_if_stalled(now_ms / 1000)

    def warn_if_stalled(self, now: float) -> bool:
        stalled = HEALTH.stalled_for(self._stall, now)
        if stalled is None:
            return False
        if self._last_warning is not None and now - self._last_warning < WARN_EVERY_SECONDS:
            return False
        self._last_warning = now
        last = HEALTH.last_delivery_ts
        logger.warning(
            "Account-data audit delivery has stopped: %d changes waiting, the oldest for %.0f s, and no batch"
            " acknowledged %s. The delivering instance is %r (delivery_instance): check that it runs, and its"
            " log for why delivery fails (an unreachable appservice, a token mismatch).",
            HEALTH.depth,
            HEALTH.oldest_age_seconds(now),
            f"for {now - last / 1000:.0f} s" if last is not None else "yet",
            self._delivery_instance,
        )
        return True
