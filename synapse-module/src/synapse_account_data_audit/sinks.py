"""Keeps the appservice's JSONL export going while the audit room refuses records or lags behind.

The appservice writes every batch to its export file before it posts it, and says in every answer how far
the export got (``sinks.jsonl``). When the room refuses a batch (503) that the export took whole, the
delivery loop retries the room after its backoff as always, and this feeder sends the rows after the
export's position with ``"sinks_only": ["jsonl"]``: the appservice writes them to the file only. Rows are
still deleted only on the room's acknowledgement, which the appservice gives only for records its export
holds, so the outbox keeps every record until every sink has it, and the file never gets one twice (it
skips seqs it holds). The same feeding runs while a backlog drains and the room paces the pipeline (each
room batch's answer says the export's position), so the file is not held to the room's rate; it stops once
the outbox is drained. The position lives in memory: after a restart the next answer gives it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from synapse.module_api import ModuleApi

from .config import AuditModuleConfig
from .logsafe import describe_with_trace
from .store import AuditStore
from .transport import post_json

logger = logging.getLogger(__name__)


def sinks_through(body: Any) -> int | None:
    """How far the appservice's JSONL export got (its answer's ``sinks.jsonl``), or None without one."""
    sinks = body.get("sinks") if isinstance(body, dict) else None
    through = sinks.get("jsonl") if isinstance(sinks, dict) else None
    return through if isinstance(through, int) and not isinstance(through, bool) else None


class SinkFeeder:
    def __init__(
        self,
        api: ModuleApi,
        config: AuditModuleConfig,
        store: AuditStore,
        headers: dict[bytes, list[bytes]],
        acked_head: Callable[[], Any],
    ) -> None:
        self._api = api
        self._config = config
        self._outbox = store
        self._headers = headers
        self._acked_head = acked_head
        #: The last seq the export handled, while the room refuses; None: the room's batches feed it.
        self.through: int | None = None
        self._feeding = False
        self._more = False

    def start(self, through: int) -> None:
        """The room refused a batch the export holds through ``through``: feed the export what follows."""
        self.through = max(self.through or 0, through)
        self.kick()

    def stop(self) -> None:
        """The room took its batch: the room's batches feed the export again."""
        self.through = None

    def kick(self) -> None:
        """New rows (or a new position): sends them soon if feeding; cheap, never waits."""
        if self.through is None:
            return
        if self._feeding:
            self._more = True
            return
        self._feeding = True
        self._api.run_as_background_process("account_data_audit_sinks", self._feed)

    async def _feed(self) -> None:
        """Sends the rows after ``through`` until none is left or the export fails (the room's next retry or
        the next change starts it again)."""
        try:
            while self.through is not None:
                self._more = False
                after = self.through
                rows = await self._outbox.read_batch(
                    self._config.batch_size, self._config.max_batch_bytes, after
                )
                if not rows:
                    if self._more:
                        continue
                    return
                body: dict[str, Any] = {
                    "changes": [row.to_wire(content_cap=self._config.max_content_bytes) for row in rows],
                    "sinks_only": ["jsonl"],
                }
                body["acked_head"] = self._acked_head()
                try:
                    answer = await post_json(
                        self._api.http_client, self._config.changes_url, body, self._headers
                    )
                except Exception as e:
                    logger.warning(
                        "The appservice's export did not take seq %d-%d: %s", rows[0].seq, rows[-1].seq, e
                    )
                    return
                through = sinks_through(answer)
                if through is None or through < rows[-1].seq:
                    return
                if self.through is not None:
                    self.through = max(self.through, through)
        except Exception as e:
            logger.error("Feeding the appservice's export stopped: %s", describe_with_trace(e))
        finally:
            self._feeding = False
