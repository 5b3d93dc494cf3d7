"""What the module needs to know about Synapse that the module API does not offer.

Crash recovery needs the account-data stream position at startup and the list of account-data stream
writers. Neither is in ``ModuleApi``, so they are read from Synapse's internals here, in one place, and any
failure (a Synapse version that moved them) turns recovery off with an error in the log instead of breaking
the module. Tested against the pinned Synapse version by the e2e suite.
"""

from __future__ import annotations

import logging
from typing import Any

from synapse.module_api import ModuleApi

logger = logging.getLogger(__name__)


def account_data_stream_position(api: ModuleApi) -> int | None:
    """The position up to which Synapse has persisted the account-data stream (``None`` if unknown)."""
    try:
        store: Any = api._store  # no public equivalent
        position = store.get_max_account_data_stream_id()
    except Exception as e:
        logger.error("Cannot read Synapse's account-data stream position: %r", e)
        return None
    return position if isinstance(position, int) and not isinstance(position, bool) else None


def account_data_writers(api: ModuleApi) -> list[str] | None:
    """The instances configured as account-data stream writers (``None`` if unknown)."""
    try:
        hs: Any = api._hs  # no public equivalent
        writers = list(hs.config.worker.writers.account_data)
    except Exception as e:
        logger.error("Cannot read Synapse's account-data stream writers: %r", e)
        return None
    return [str(w) for w in writers]
