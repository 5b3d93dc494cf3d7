"""Checkpoints: a chained record written when nothing was written for ``checkpoint_interval_seconds``.

Without them an idle trail and a dead one look the same in the room (the newest record is old either way);
with them, the newest record is never much older than the interval while the host module, the delivery and
the appservice work, so ``verify --max-age`` can tell a cron job that the trail is alive. A checkpoint carries
only the chain (no user, no content), and goes through the outbox's one insert path like every record, so
sequence numbers and the chain stay serial with the writer's inserts on any instance.

Only the delivery instance checks (one checker per server, so no two checkpoints race), every
``check_period_seconds``; the newest record's ``created_ts`` is kept next to the chain head by every insert
(``outbox.HEAD_TS_NAME``), so the check is one small transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import Counter
from synapse.module_api import ModuleApi
from synapse.storage.database import LoggingTransaction

from . import outbox
from .logsafe import describe
from .meta import get_meta_txn, set_meta_txn

if TYPE_CHECKING:  # the store runs this module's transaction
    from .store import AuditStore

logger = logging.getLogger(__name__)

CHECKPOINTS = Counter(
    "synapse_account_data_audit_checkpoints_total",
    "Checkpoint records written because no record was written for checkpoint_interval_seconds.",
)

#: The longest wait between two checks: a long interval still gets its checkpoint within a minute of due.
MAX_CHECK_PERIOD_SECONDS = 60.0


def check_period_seconds(interval_seconds: float) -> float:
    """How often to check: half the interval (a checkpoint is then at most 1.5 intervals after the last
    record), at most a minute."""
    return min(interval_seconds / 2, MAX_CHECK_PERIOD_SECONDS)


def checkpoint_if_idle_txn(
    txn: LoggingTransaction, key: bytes, now_ms: int, interval_ms: int, change_id: str
) -> outbox.OutboxRow | None:
    """Writes a checkpoint if the newest record is ``interval_ms`` old or older; returns it, or None."""
    # Under the inserters' lock: a change committed meanwhile is seen, and the checkpoint is not written.
    outbox.lock_txn(txn)
    head_ts = get_meta_txn(txn, outbox.HEAD_TS_NAME)
    if head_ts is None:
        # No record written since checkpoints exist (a new server, or the upgrade that brought them): idle
        # time counts from the first check, so an upgrade does not write one at once.
        set_meta_txn(txn, outbox.HEAD_TS_NAME, str(now_ms))
        return None
    if now_ms - int(head_ts) < interval_ms:
        return None
    checkpoint = outbox.NewChange(change_id, "", None, "", "{}", now_ms, kind=outbox.KIND_CHECKPOINT)
    (row,) = outbox.insert_many_txn(txn, key, [checkpoint])
    return row


class Checkpointer:
    def __init__(
        self,
        api: ModuleApi,
        store: AuditStore,
        interval_seconds: float,
        new_id: Callable[[], str],
        on_written: Callable[[], None],
    ) -> None:
        self._api = api
        self._store = store
        self._interval_ms = int(interval_seconds * 1000)
        self._new_id = new_id
        self._on_written = on_written

    async def check(self) -> None:
        """One check (Synapse's looping call runs it every ``check_period_seconds``); never raises: a failed
        check is logged, and the next one tries again."""
        try:
            row = await self._store.checkpoint_if_idle(self._interval_ms, self._new_id())
        except Exception as e:
            logger.warning("Account-data audit: could not check for an idle trail (retried): %s", describe(e))
            return
        if row is not None:
            CHECKPOINTS.inc()
            logger.info(
                "Account-data audit: checkpoint seq %d (no record for %d ms)", row.seq, self._interval_ms
            )
            self._on_written()
