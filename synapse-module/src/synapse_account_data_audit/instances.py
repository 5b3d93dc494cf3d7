"""The startup check that ``delivery_instance`` names an instance Synapse knows.

A typo there (``acc`` for ``acct``) used to stop the trail silently: no instance matched, so none delivered,
and every change waited in the outbox for good. Synapse's worker config in the shared ``homeserver.yaml``
names the instances that matter (``instance_map``, ``stream_writers``, ``run_background_tasks_on``, the
federation sender and pusher instances), and every process loads it, so each process can refuse a name that
appears nowhere there, at startup, before any change is lost. The worker config is not in ``ModuleApi``; it is
read from Synapse's internals here, and a Synapse that moved it skips the check with a warning instead of
refusing to start.
"""

from __future__ import annotations

import logging
from typing import Any

import attr
from synapse.module_api import ModuleApi
from synapse.module_api.errors import ConfigError

logger = logging.getLogger(__name__)

#: How Synapse names the main process (its ``worker_name`` is unset); ``instance_map`` calls it "main".
MAIN = "master"


def known_instances(api: ModuleApi) -> list[str] | None:
    """Every instance name Synapse's shared worker config mentions, and this process's own (None: unknown)."""
    try:
        worker: Any = api._hs.config.worker  # no public equivalent
        names = {MAIN, api.worker_name or MAIN}
        # Synapse renames instance_map's "main" to "master" when it loads the config.
        names.update(str(name) for name in worker.instance_map)
        for field in attr.fields(type(worker.writers)):
            names.update(str(name) for name in getattr(worker.writers, field.name))
        names.add(str(getattr(worker, "run_background_tasks_on", None) or MAIN))
        for shard in ("federation_shard_config", "pusher_shard_config"):
            names.update(str(name) for name in getattr(getattr(worker, shard, None), "instances", []) or [])
    except Exception as e:
        logger.warning(
            "Account-data audit: cannot read Synapse's worker config to check 'delivery_instance' (%r)", e
        )
        return None
    return sorted(names)


def check_delivery_instance(api: ModuleApi, delivery_instance: str) -> None:
    """Raises ConfigError, naming the value and the known instances, if no instance can have that name."""
    known = known_instances(api)
    if known is None or delivery_instance in known:
        return
    hint = " (the main process is 'master')" if delivery_instance == "main" else ""
    raise ConfigError(
        f"'delivery_instance' is {delivery_instance!r}{hint}, which is not an instance Synapse knows:"
        f" {', '.join(known)}. No instance would deliver the audit outbox. Set it to the account-data stream"
        " writer's worker_name ('master' for the main process), and list that worker in instance_map.",
        ("delivery_instance",),
    )
