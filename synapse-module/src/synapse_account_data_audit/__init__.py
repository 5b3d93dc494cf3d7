"""Synapse module for matrix-account-data-audit.

On every account-data change it records the change in an outbox table in Synapse's database (queued in
memory and committed by a background writer within milliseconds: see ``writer``; no network call), and on
the delivery instance a background loop hands the outbox, in order, to the appservice that posts the audit
messages. On the account-data stream writer, each start first recovers changes that an unclean shutdown kept
from the outbox (see ``recovery``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from synapse.module_api import JsonDict, ModuleApi

from . import compat
from .checkpoints import Checkpointer, check_period_seconds
from .config import AuditModuleConfig, parse_config
from .delivery import Deliverer
from .health_stats import HEALTH, READ_PERIOD_SECONDS, StatsReader
from .instances import check_delivery_instance
from .outbox import KIND_DEACTIVATION, encode_content
from .poller import Poller, sources_for
from .store import AuditStore
from .synapse_state import account_data_stream_position, account_data_writers
from .wake import POLL_PERIOD_SECONDS, WakePoller, request_wake_txn
from .web import HEALTH_PATH, WAKE_PATH, HealthResource, WakeResource
from .writer import OutboxWriter, new_change_id, register_shutdown_flush

__all__ = ["AccountDataAuditModule", "AuditModuleConfig"]

logger = logging.getLogger(__name__)


class AccountDataAuditModule:
    #: The module's tables (a seam for fault-injection builds in the test suite).
    store_class: type[AuditStore] = AuditStore

    def __init__(self, config: AuditModuleConfig, api: ModuleApi, reactor: Any = None) -> None:
        # First: on a Synapse without the module API this module calls, refuse to load, saying why.
        compat.check_synapse(compat.synapse_version(), ModuleApi)
        # A delivery_instance no instance has would stop the trail silently: refuse to start, naming it.
        check_delivery_instance(api, config.delivery_instance)
        self._api = api
        self._config = config
        self._outbox = self.store_class(api)
        self._deliverer: Deliverer | None = None
        # Read now: modules are loaded just before Synapse starts listening, so no change of this run has a
        # position at or below it (see ``recovery``).
        fence = recovery_fence(api)
        self._writer = OutboxWriter(
            api,
            self._outbox,
            on_written=self._kick_delivery,
            recovery_fence=fence,
            stream_position=lambda: account_data_stream_position(api),
        )
        register_shutdown_flush(api, self._writer, reactor)
        self._writer.start()
        # Room tags and push rules never reach the callback: polled from Synapse's tables where written.
        sources = sources_for(api)
        if sources:
            table_poller = Poller(api, self._outbox, sources, self._kick_delivery, new_change_id)
            api.looping_background_call(
                table_poller.poll,
                config.poll_tags_push_rules_seconds * 1000,
                desc="account_data_audit_poll_tables",
                run_on_all_instances=True,  # the stream writer may be a worker without background tasks
            )
            api.delayed_background_call(0, table_poller.poll, desc="account_data_audit_poll_tables_start")
        if (api.worker_name or "master") == config.delivery_instance:
            deliverer = Deliverer(api, config, self._outbox)
            self._deliverer = deliverer
            api.looping_background_call(
                deliverer.kick,
                config.poll_interval_seconds * 1000,
                desc="account_data_audit_poll",
                run_on_all_instances=True,
            )
            # On all instances as the poll: the delivery instance may be a worker without background tasks.
            interval = config.checkpoint_interval_seconds
            checkpointer = Checkpointer(api, self._outbox, interval, new_change_id, on_written=deliverer.kick)
            api.looping_background_call(
                checkpointer.check,
                check_period_seconds(interval) * 1000,
                desc="account_data_audit_checkpoint",
                run_on_all_instances=True,
            )
            # Deliver what an earlier run left in the outbox without waiting for the first poll.
            api.delayed_background_call(0, deliverer.kick, desc="account_data_audit_start")
            # A wake request that another instance took (see ``wake``) ends a backoff within a second.
            poller = WakePoller(api, self._outbox, lambda: deliverer.backing_off, deliverer.wake)
            api.looping_background_call(
                poller.check,
                POLL_PERIOD_SECONDS * 1000,
                desc="account_data_audit_wake_poll",
                run_on_all_instances=True,
            )
        # Every instance: the outbox's health from the database (metrics, a warning when delivery stopped) and
        # the endpoints, so a stop is seen whichever instance is asked.
        stats = StatsReader(api, self._outbox, config.delivery_instance, config.stall_warning_seconds)
        api.looping_background_call(
            stats.read,
            READ_PERIOD_SECONDS * 1000,
            desc="account_data_audit_health",
            run_on_all_instances=True,
        )
        info = {
            "checkpoint_interval_seconds": config.checkpoint_interval_seconds,
            "delivery_instance": config.delivery_instance,
        }
        api.register_web_resource(WAKE_PATH, WakeResource(config.token, self._wake, info))
        api.register_web_resource(HEALTH_PATH, HealthResource(config.token, self._health))
        api.register_account_data_callbacks(on_account_data_updated=self.on_account_data_updated)
        # Synapse deletes a deactivated user's account data without calling the account-data callback: record
        # deactivation (and reactivation) as records of their own.
        api.register_third_party_rules_callbacks(
            on_user_deactivation_status_changed=self.on_user_deactivation_status_changed
        )

    @staticmethod
    def parse_config(config: dict[str, Any]) -> AuditModuleConfig:
        return parse_config(config)

    async def on_account_data_updated(
        self, user_id: str, room_id: str | None, account_data_type: str, content: JsonDict
    ) -> None:
        """Runs inline in the user's request: serialises the change and queues it for the outbox writer.
        Never awaits the network, and awaits the database only when the writer is far behind."""
        try:
            # Serialising copies the content: Synapse caches that dict, so we neither keep nor change it.
            encoded = encode_content(content)
        except Exception:
            # Synapse would log and swallow this too; say what was lost so an admin can follow up.
            logger.exception(
                "Could not record the account-data change of %s (type %s, room %s) for audit",
                user_id,
                account_data_type,
                room_id,
            )
            return
        await self._writer.record(user_id, room_id, account_data_type, encoded)

    async def on_user_deactivation_status_changed(
        self, user_id: str, deactivated: bool, by_admin: bool
    ) -> None:
        """Runs on the instance that handled the (de)activation; queued like an account-data change."""
        facts = json.dumps({"deactivated": deactivated, "by_admin": by_admin}, separators=(",", ":"))
        await self._writer.record(user_id, None, "", facts, kind=KIND_DEACTIVATION)

    async def _wake(self) -> None:
        """The appservice is back: stored for the delivering instance to see; acted on here if it is us."""
        await self._outbox.ensure_tables()
        await self._api.run_db_interaction("account_data_audit_wake", request_wake_txn)
        if self._deliverer is not None:
            self._deliverer.wake()
        logger.info("Account-data audit: the appservice asked to resume delivery")

    def _health(self) -> dict[str, Any]:
        instance = self._api.worker_name or "master"
        return HEALTH.to_json(self._config.delivery_instance, self._config.stall_warning_seconds, instance)

    def _kick_delivery(self) -> None:
        if self._deliverer is not None:
            self._deliverer.kick()


def recovery_fence(api: ModuleApi) -> int | None:
    """The account-data stream position recovery runs up to, or None where it must not run: on instances
    that are not the account-data stream writer (they never see a change), and where Synapse has several
    writers (one writer's startup position does not bound the others' changes)."""
    instance = api.worker_name or "master"
    writers = account_data_writers(api)
    if writers is None:
        logger.error(
            "Account-data audit crash recovery is off: cannot tell whether this instance writes account data."
        )
        return None
    if instance not in writers:
        return None
    if len(writers) > 1:
        logger.warning(
            "Synapse has several account-data stream writers (%s): account-data audit crash recovery is off. "
            "A clean shutdown still loses nothing; a hard crash of a writer can lose the changes it had not "
            "yet written to the audit outbox (see the README).",
            ", ".join(writers),
        )
        return None
    position = account_data_stream_position(api)
    if position is None:
        logger.error(
            "Account-data audit crash recovery is off: this Synapse version does not expose the account-data "
            "stream position the module reads. Changes are still recorded; a hard crash can lose the few "
            "not yet written to the audit outbox."
        )
    return position
