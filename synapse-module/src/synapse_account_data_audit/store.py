"""The module's tables, through Synapse's database pool: one async method per transaction."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from synapse.module_api import ModuleApi
from synapse.storage.database import LoggingTransaction

from . import claims, compat, keyed_digest, meta, outbox, recovery
from .checkpoints import checkpoint_if_idle_txn
from .dbutil import is_postgres
from .digest_mode import DigestPolicy, fetch_for_delivery_txn
from .health_stats import LAST_DELIVERY_NAME
from .recovery import RecoveryResult, recover_txn

#: Claims kept before old ones are dropped (see ``claims.prune_claims_txn``); checked every so many writes.
CLAIMS_KEPT = 100_000
_PRUNE_EVERY_WRITES = 100


#: Serialises table creation between Synapse's processes (concurrent CREATE TABLE IF NOT EXISTS can fail).
_CREATE_LOCK_KEY = 0x61646174  # "adat"


def create_tables_txn(txn: LoggingTransaction) -> None:
    if is_postgres(txn):
        txn.execute("SELECT pg_advisory_xact_lock(?)", (_CREATE_LOCK_KEY,))
    outbox.create_outbox_txn(txn)
    claims.create_tables_txn(txn)
    meta.create_tables_txn(txn)


#: The ID of the last change each instance wrote (``last_write:<instance>``), committed with it.
LAST_WRITE_PREFIX = "last_write:"


def record_txn(
    txn: LoggingTransaction,
    key: bytes,
    changes: list[outbox.NewChange],
    prune: bool,
    advance: bool,
    instance: str = "master",
    marker: tuple[bool, int | None] = (False, None),
    claim: bool = True,
) -> None:
    """Inserts ``changes`` into the outbox (sealed with ``key``) and the positions they claim, and the
    claims, in one transaction (so a claim exists exactly when its change is in the outbox).

    Idempotent for the writer's retries: a write can commit and still fail for the writer (the connection
    drops after COMMIT), which then retries with the same changes first (and maybe more behind them). The
    instance's last written change ID commits with the rows; finding it among ``changes`` means everything
    up to it is in already. (Looking the IDs up in the outbox would not do: delivery may have sent and
    deleted those rows while the writer backed off.)

    ``marker``: (clear the clean-shutdown marker, the position to set it to or None), see ``recovery``. Set
    in the same transaction as the last changes, it vouches exactly for what is committed with it."""
    clear, clean_through = marker
    if clear or clean_through is not None:
        recovery.clear_clean_shutdown_txn(txn)
    if clean_through is not None:
        meta.set_meta_txn(txn, recovery.CLEAN_SHUTDOWN, str(clean_through))
    name = LAST_WRITE_PREFIX + instance
    last = meta.get_meta_txn(txn, name)
    ids = [change.change_id for change in changes]
    if last is not None and last in ids:
        changes = changes[ids.index(last) + 1 :]
    if not changes:
        return
    meta.set_meta_txn(txn, name, changes[-1].change_id)
    # Where Synapse's account-data tables do not fit (``compat``), nothing is claimed.
    positions = claims.claim_positions_txn(txn, changes) if claim else [None] * len(changes)
    pairs = list(zip(changes, positions, strict=True))
    outbox.insert_many_txn(
        txn,
        key,
        [change if position is None else replace(change, stream_id=position) for change, position in pairs],
    )
    claims.insert_claims_txn(
        txn, [(position, claims.key_of(change)) for change, position in pairs if position is not None]
    )
    if prune:
        claims.prune_claims_txn(txn, CLAIMS_KEPT, advance_recovered_through=advance)


#: Where the appservice's posted head and the last acknowledged row are kept (see PostedLinks in the
#: appservice): JSON {"seq", "hash"}.
POSTED_HEAD_NAME = "posted_head"
ACKED_HEAD_NAME = "acked_head"
#: The appservice's digest settings as it last gave them.
DIGEST_NAME = "digest_settings"


def delete_delivered_txn(
    txn: LoggingTransaction,
    first_seq: int,
    last_seq: int,
    posted_head: Any,
    acked_head: Any,
    now_ms: int | None = None,
) -> None:
    outbox.delete_range_txn(txn, first_seq, last_seq)
    if now_ms is not None:
        # Every instance reads it (``health_stats``): when delivery last worked, wherever it runs.
        meta.set_meta_txn(txn, LAST_DELIVERY_NAME, str(now_ms))
    for name, value in ((POSTED_HEAD_NAME, posted_head), (ACKED_HEAD_NAME, acked_head)):
        meta.set_meta_txn(txn, name, json.dumps(value, separators=(",", ":")))


def heads_txn(txn: LoggingTransaction) -> tuple[Any, Any]:
    values = [meta.get_meta_txn(txn, name) for name in (POSTED_HEAD_NAME, ACKED_HEAD_NAME)]
    posted, acked = (json.loads(value) if value else None for value in values)
    return posted, acked


class AuditStore:
    def __init__(self, api: ModuleApi) -> None:
        self._api = api
        self._tables_ready = False
        self._key = b""
        self._writes = 0
        #: Set once this run's recovery has finished: only then may pruning move ``recovered_through``, and
        #: only then may a clean shutdown leave its marker.
        self.recovery_done = False
        #: A clean-shutdown marker may be in the table (left by the last run, if recovery did not read it, or
        #: written by this one): the next write deletes it, so a later crash never looks clean.
        self.marker_may_be_set = True
        #: What Synapse's tables allow (``compat``), known once ``ensure_tables`` has run.
        self.synapse_tables = compat.TableCheck(claims=True, recovery=True)

    async def ensure_tables(self) -> None:
        if not self._tables_ready:
            await self._api.run_db_interaction("account_data_audit_create", create_tables_txn)
            self._key = await self._api.run_db_interaction(
                "account_data_audit_key", keyed_digest.keyed_digest_key_txn
            )
            # Before the first claim and before recovery: both read Synapse's tables.
            self.synapse_tables = await self._api.run_db_interaction(
                "account_data_audit_compat", compat.check_tables_txn
            )
            compat.report_tables(self.synapse_tables, compat.synapse_version())
            self._tables_ready = True

    async def record(self, changes: list[outbox.NewChange], clean_through: int | None = None) -> None:
        """Writes ``changes``; with ``clean_through``, also the clean-shutdown marker for that position."""
        await self.ensure_tables()
        self._writes += 1
        prune = self._writes % _PRUNE_EVERY_WRITES == 0
        await self._api.run_db_interaction(
            "account_data_audit_record",
            record_txn,
            self._key,
            changes,
            prune,
            self.recovery_done,
            self._api.worker_name or "master",
            (self.marker_may_be_set, clean_through),
            self.synapse_tables.claims,
        )
        self.marker_may_be_set = clean_through is not None

    async def recover(self, fence: int, new_id: Callable[[], str]) -> RecoveryResult | None:
        """Runs crash recovery; None if Synapse's tables do not allow it (``compat`` logged why)."""
        await self.ensure_tables()
        if not self.synapse_tables.recovery:
            return None
        result: RecoveryResult = await self._api.run_db_interaction(
            "account_data_audit_recover",
            recover_txn,
            fence,
            self._api.get_current_time_msec(),
            new_id,
            self._key,
        )
        self.marker_may_be_set = False  # recovery deletes it
        return result

    async def sync(self) -> None:
        """One round trip through Synapse's database pool (see ``OutboxWriter.close``)."""
        await self._api.run_db_interaction(
            "account_data_audit_sync", meta.get_meta_txn, recovery.CLEAN_SHUTDOWN
        )

    async def fetch_batch(
        self,
        limit: int,
        max_bytes: int,
        after_seq: int = 0,
        digest: DigestPolicy | None = None,
        busy: frozenset[str] = frozenset(),
        backlog_after: int | None = None,
    ) -> list[outbox.OutboxRow]:
        await self.ensure_tables()
        rows: list[outbox.OutboxRow] = await self._api.run_db_interaction(
            "account_data_audit_fetch",
            fetch_for_delivery_txn,
            limit,
            max_bytes,
            after_seq,
            digest,
            busy,
            backlog_after,
        )
        return outbox.with_salts(self._key, rows)

    async def read_batch(self, limit: int, max_bytes: int, after_seq: int) -> list[outbox.OutboxRow]:
        """The rows after ``after_seq``, read only: no digest group is decided (the room's fetch decides them,
        and a group decided here would be the room's too)."""
        await self.ensure_tables()
        rows: list[outbox.OutboxRow] = await self._api.run_db_interaction(
            "account_data_audit_read", outbox.fetch_batch_txn, limit, max_bytes, after_seq
        )
        return outbox.with_salts(self._key, rows)

    async def delete_range(
        self, first_seq: int, last_seq: int, posted_head: Any = None, acked_head: Any = None
    ) -> None:
        await self._api.run_db_interaction(
            "account_data_audit_delete",
            delete_delivered_txn,
            first_seq,
            last_seq,
            posted_head,
            acked_head,
            int(self._api.get_current_time_msec()),
        )

    async def digest_settings(self) -> Any:
        """The appservice's digest settings as it last gave them (see ``digest_mode``), or None."""
        await self.ensure_tables()
        text = await self._api.run_db_interaction("account_data_audit_digest", meta.get_meta_txn, DIGEST_NAME)
        return json.loads(text) if text else None

    async def save_digest_settings(self, settings: Any) -> None:
        text = json.dumps(settings, separators=(",", ":"))
        await self._api.run_db_interaction("account_data_audit_digest", meta.set_meta_txn, DIGEST_NAME, text)

    async def heads(self) -> tuple[Any, Any]:
        """The appservice's posted head and the last acknowledged row ({"seq", "hash"} mappings, or None)."""
        await self.ensure_tables()
        return await self._api.run_db_interaction("account_data_audit_heads", heads_txn)

    async def checkpoint_if_idle(self, interval_ms: int, change_id: str) -> outbox.OutboxRow | None:
        """Writes a checkpoint if no record was written for ``interval_ms`` (see ``checkpoints``)."""
        await self.ensure_tables()
        row: outbox.OutboxRow | None = await self._api.run_db_interaction(
            "account_data_audit_checkpoint",
            checkpoint_if_idle_txn,
            self._key,
            self._api.get_current_time_msec(),
            interval_ms,
            change_id,
        )
        return row

    async def stats(self) -> tuple[int, int | None]:
        return await self._api.run_db_interaction("account_data_audit_stats", outbox.stats_txn)
