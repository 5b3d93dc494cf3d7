"""A test build of the host module whose writer never commits: every change it records stays in memory, in
the window that a hard crash loses. The e2e suite loads it, makes changes, waits for the "held" log lines
(proof that the callbacks ran and the changes are queued, not written), kills Synapse with SIGKILL, and
restarts it with the real module to check crash recovery. Not part of the product."""

from __future__ import annotations

import logging

from synapse.module_api import JsonDict, make_deferred_yieldable
from twisted.internet import defer

from synapse_account_data_audit import AccountDataAuditModule
from synapse_account_data_audit.outbox import NewChange
from synapse_account_data_audit.store import AuditStore

logger = logging.getLogger(__name__)


class HeldAuditStore(AuditStore):
    async def record(self, changes: list[NewChange], clean_through: int | None = None) -> None:
        await make_deferred_yieldable(defer.Deferred())


class HeldWriterAuditModule(AccountDataAuditModule):
    store_class = HeldAuditStore

    async def on_account_data_updated(
        self, user_id: str, room_id: str | None, account_data_type: str, content: JsonDict
    ) -> None:
        await super().on_account_data_updated(user_id, room_id, account_data_type, content)
        logger.warning("HELD change of %s (%s, %s), not written", user_id, account_data_type, room_id)
