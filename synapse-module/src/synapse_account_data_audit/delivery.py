"""Delivers the outbox to the appservice: in sequence order, in batches, several requests at a time.

The loop is woken by each new change (``kick``), so delivery does not wait for a timer; a slow poll is only a
safety net for changes it was not told about (e.g. those left over from before a restart). Batches are sent
before the first is answered, up to a budget of ``batches_in_flight`` full batches (see ``window``), so the
appservice always has the next changes in hand (it acknowledges batches in order), and one user's backlog of
slow records does not keep other users' changes in the outbox. On any failure it lets the batches in flight
finish, backs off (capped exponential, with jitter) and sends the first unacknowledged batch again; it never
drops a change. Rows are deleted only once the appservice has acknowledged them, and only in order: nothing
after a failed batch is deleted before that batch is acknowledged.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from typing import Any, Protocol

from prometheus_client import Counter
from synapse.api.errors import HttpResponseException
from synapse.module_api import ModuleApi, make_deferred_yieldable, run_in_background
from twisted.internet import defer

from . import health_stats, outbox
from .answers import NO_HEAD, error_body, is_pending, is_token_mismatch, posted_head, processed_through
from .config import AuditModuleConfig
from .digest_mode import DigestPolicy, whole_group_prefixes
from .logsafe import describe_with_trace
from .sinks import SinkFeeder, sinks_through
from .store import AuditStore
from .transport import post_json
from .wake import WakeSignal
from .window import NewChanges, PipelineWindow

logger = logging.getLogger(__name__)

# Every instance sets the outbox gauges from the database (``health_stats``); delivery refreshes them too.
OUTBOX_DEPTH, OLDEST_AGE = health_stats.OUTBOX_DEPTH, health_stats.OLDEST_AGE
DELIVERED = Counter("synapse_account_data_audit_delivered_total", "Changes acknowledged by the appservice.")
FAILURES = Counter(
    "synapse_account_data_audit_delivery_failures_total", "Failed delivery attempts to the appservice."
)
PENDING = Counter(
    "synapse_account_data_audit_delivery_pending_total",
    "Answers that a batch is still being posted (it is sent again at once).",
)


class Sleeper(Protocol):
    async def __call__(self, seconds: float) -> None: ...


def backoff_delay(attempt: int, initial: float, maximum: float, rand: random.Random) -> float:
    """Capped exponential backoff with "equal jitter": between half and all of the capped delay."""
    capped: float = min(maximum, initial * 2.0 ** min(attempt, 62))
    return capped / 2 + rand.random() * capped / 2


class Deliverer:
    def __init__(
        self,
        api: ModuleApi,
        config: AuditModuleConfig,
        store: AuditStore,
        rand: random.Random | None = None,
    ) -> None:
        self._api = api
        self._outbox = store
        self._config = config
        self._rand = rand or random.Random()
        self._headers = {b"Authorization": [f"Bearer {config.token}".encode("ascii")]}
        self._running = False
        self._more = False
        self._last_stats = 0.0
        #: The appservice's posted head, and the last acknowledged row ({seq, hash}), as of the last
        #: acknowledgement (see README, "The hash chain"); loaded from the database before the first request.
        self._head: Any = NO_HEAD
        self._acked: Any = None
        #: Digest mode as the appservice last asked for it (see ``digest_mode``); off until it says.
        self._digest: DigestPolicy | None = None
        self._digest_heard = False
        #: The backoff's sleep, cut short by ``wake`` (the appservice is back: see ``wake``).
        self._backoff = WakeSignal(lambda seconds: self._api.sleep(seconds))
        #: Wakes the loop waiting on an answer when a change arrives (see ``window.NewChanges``).
        self._new_changes = NewChanges()
        #: Keeps the appservice's JSONL export going while the room refuses records (see ``sinks``).
        self._sinks = SinkFeeder(api, config, store, self._headers, lambda: self._acked)
        #: How far the export got, as of the last answer from the room's path (None: no export).
        self._exported: int | None = None

    @property
    def backing_off(self) -> bool:
        return self._backoff.sleeping

    def wake(self) -> None:
        """The appservice is back: ends a backoff at once (or starts a drain pass if none is running)."""
        if not self._backoff.wake():
            self.kick()

    def kick(self) -> None:
        """Makes sure a drain pass runs soon; cheap, and never waits for it."""
        self._sinks.kick()
        if self._running:
            self._more = True
            self._new_changes.notify()
            return
        self._running = True
        self._api.run_as_background_process("account_data_audit_delivery", self._drain)

    async def _drain(self) -> None:
        try:
            if self._head is NO_HEAD:
                self._head, self._acked = await self._outbox.heads()
            if not self._digest_heard:
                # What the appservice last said, kept across restarts: a backlog waiting at startup goes
                # out in digests from the first batch.
                self._digest = DigestPolicy.from_answer(await self._outbox.digest_settings())
                self._digest_heard = True
            while True:
                self._more = False
                failed = await self._send_pipelined()
                if failed is not None:
                    await self._deliver(*failed)
                    continue
                await self.refresh_stats(force=True)
                if self._more:
                    continue
                # Drained: the room's batches keep the export up again.
                self._sinks.stop()
                return
        except Exception as e:
            # Only database trouble gets here (delivery errors are retried inside); the next kick or
            # poll starts again. Not logger.exception: a database error's message can hold a row.
            logger.error(
                "Account-data audit delivery stopped; it resumes on the next change or poll: %s",
                describe_with_trace(e),
            )
        finally:
            self._running = False

    async def _send_pipelined(self) -> tuple[list[outbox.OutboxRow], Exception] | None:
        """Sends the outbox, keeping up to ``batches_in_flight`` batches' worth open (``window``), until it is
        empty.

        Returns the first batch that failed (after the later ones in flight have finished), or None."""
        in_flight: deque[tuple[list[outbox.OutboxRow], int, defer.Deferred[tuple[Exception | None, Any]]]] = (
            deque()
        )
        # In digest mode a batch has room for every lane to fill a digest.
        limit = max(self._config.batch_size, self._digest.batch_rows if self._digest else 0)
        window = PipelineWindow(self._config.batches_in_flight, limit, self._config.max_batch_bytes)
        after_seq = 0
        last_was_full = True
        failed: tuple[list[outbox.OutboxRow], Exception] | None = None
        while True:
            if failed is None and window.has_room():
                gather = window.gather_seconds(last_was_full)
                if gather > 0:
                    await self._api.sleep(gather)
                self._more = False
                # Users with changes in the batches in flight get digests of their own (see ``digest_mode``).
                busy = frozenset(row.user_id for batch, _, _ in in_flight for row in batch)
                # The backlog digest mode looks at starts at the first row not yet acknowledged.
                backlog_after = in_flight[0][0][0].seq - 1 if in_flight else after_seq
                rows = await self._outbox.fetch_batch(
                    limit,
                    self._config.max_batch_bytes,
                    after_seq,
                    self._digest,
                    busy,
                    backlog_after,
                )
                if rows:
                    # ``follows`` lets the appservice start the batches in this order even if the requests,
                    # on separate connections, arrive the other way round.
                    follows = after_seq if in_flight else None
                    weight = window.sent(rows)
                    # Full by rows or by bytes: a backlog waits behind it (no need to let changes gather).
                    last_was_full = len(rows) >= limit or 2 * weight >= self._config.max_batch_bytes
                    in_flight.append((rows, weight, run_in_background(self._post, rows, follows)))
                    after_seq = rows[-1].seq
                    continue
                last_was_full = False
                if in_flight:
                    if self._more:
                        continue  # a change committed while the fetch ran: fetch again
                    oldest = in_flight[0][2]
                    await self._new_changes.wait(oldest)
                    if not oldest.called:
                        continue  # a new change: fetch it
            if not in_flight:
                return failed
            rows, weight, answer = in_flight.popleft()
            error, head = await make_deferred_yieldable(answer)
            # A backlog, and the room paces the pipeline: the window was full until this answer.
            paced = not window.has_room()
            window.answered(rows, weight)
            # A batch behind a failed one is never acknowledged here, even if it answered 200 (e.g. an
            # appservice restarted in between took it): deleting it would take rows after the failed ones out
            # of the outbox before those are delivered. It is resent after them, and the appservice skips what
            # it already posted (same change IDs, same transaction IDs).
            if failed is None and error is None:
                await self._delete(rows, head)
                if self._exported is not None and paced:
                    # The export need not wait for the room.
                    self._sinks.start(self._exported)
            elif failed is None and error is not None:
                # Later batches fail behind this one at the appservice (acknowledgements are in order);
                # wait for their answers, then retry from here.
                failed = (rows, error)
            await self.refresh_stats()

    async def _post(
        self, rows: list[outbox.OutboxRow], follows: int | None = None, without_content: bool = False
    ) -> tuple[Exception | None, Any]:
        """One request: (None, the posted head it reported) or (the error, NO_HEAD), never raising, so an
        unawaited failure is never left dangling."""
        body: dict[str, Any] = {
            "changes": [row.to_wire(without_content, self._config.max_content_bytes) for row in rows]
        }
        # The appservice judges a silence by it: a batch (a checkpoint at least) is due within the interval.
        body["checkpoint_interval_seconds"] = self._config.checkpoint_interval_seconds
        if follows is not None:
            body["follows"] = follows
        if self._head is not NO_HEAD:
            body["posted_head"] = self._head
            body["acked_head"] = self._acked
        while True:
            try:
                # Not http_client.post_json_get_json: it logs the body (see ``transport``).
                answer = await post_json(self._api.http_client, self._config.changes_url, body, self._headers)
                break
            except HttpResponseException as e:
                if not is_pending(e):
                    return e, NO_HEAD
                # Still being posted (one user's backlog ahead of it): the same batch again joins that work,
                # and its answer comes before Synapse's HTTP client would give up waiting (60 s).
                PENDING.inc()
                body["again"] = True
            except Exception as e:
                return e, NO_HEAD
        if isinstance(answer, dict) and "digest" in answer:
            policy = DigestPolicy.from_answer(answer["digest"])
            if policy != self._digest:
                self._digest = policy
                await self._outbox.save_digest_settings(answer["digest"] if policy else None)
        self._exported = sinks_through(answer)
        return None, posted_head(answer)

    async def _deliver(self, rows: list[outbox.OutboxRow], error: Exception) -> None:
        """After ``rows`` failed with ``error``: backs off and sends them until acknowledged, then deletes
        them. A 413 halves the batch at once, keeping digest groups whole (the rest follow in the next
        batches)."""
        try:
            await self._deliver_rows(rows, error)
        finally:
            # The room took them (or delivery stopped): the export is fed with the room's batches again.
            self._sinks.stop()

    async def _deliver_rows(self, rows: list[outbox.OutboxRow], error: Exception) -> None:
        attempt = 0
        without_content = False
        while rows:
            if isinstance(error, HttpResponseException) and is_token_mismatch(error):
                logger.error(
                    "Appservice refused %d account-data changes (seq %d-%d): %s %s: token mismatch: this host"
                    " module's token (its `token` config, or the hs_token of its `registration_file`) is not"
                    " the appservice's ingest.token (or, without one, its registration's hs_token); make them"
                    " equal",
                    len(rows),
                    rows[0].seq,
                    rows[-1].seq,
                    error.code,
                    error_body(error).get("errcode"),
                )
                too_large = False
            elif isinstance(error, HttpResponseException):
                done = processed_through(error)
                logger.warning(
                    "Appservice refused %d account-data changes (seq %d-%d): %s %s",
                    len(rows),
                    rows[0].seq,
                    rows[-1].seq,
                    error.code,
                    error.msg,
                )
                if done is not None and done >= rows[0].seq:
                    await self._delete(
                        [row for row in rows if row.seq <= done], posted_head(error_body(error))
                    )
                    rows = [row for row in rows if row.seq > done]
                exported = sinks_through(error_body(error))
                if exported is not None and rows and exported >= rows[-1].seq:
                    # The room refused, the export has the whole batch: keep the export going behind it.
                    self._sinks.start(exported)
                too_large = error.code == 413 and _half_length(rows) < len(rows)
                if error.code == 413 and not too_large and rows and not without_content:
                    # One change (or one digest) larger than the appservice takes in any request: it would be
                    # refused for good and hold every change behind it. Send it without its content; the
                    # appservice posts it quarantined, with its size and keyed digest.
                    logger.error(
                        "Account-data changes seq %d-%d are too large for the appservice"
                        " (ingest.max_body_bytes): delivering them without their content, to be recorded"
                        " as quarantined",
                        rows[0].seq,
                        rows[-1].seq,
                    )
                    without_content = True
                    too_large = True
            else:
                logger.warning(
                    "Could not deliver %d account-data changes (seq %d-%d) to %s: %s",
                    len(rows),
                    rows[0].seq,
                    rows[-1].seq,
                    self._config.changes_url,
                    error,
                )
                too_large = False
            if too_large:
                # Too large together: send fewer at once (or, for one change, without its content).
                rows = rows if without_content else rows[: _half_length(rows)]
            elif rows:
                FAILURES.inc()
                delay = backoff_delay(
                    attempt,
                    self._config.backoff_initial_seconds,
                    self._config.backoff_max_seconds,
                    self._rand,
                )
                attempt += 1
                await self.refresh_stats()
                if await self._backoff.sleep(delay):
                    attempt = 0  # woken: the appservice is back, so the next failure starts the backoff over
            if not rows:
                return
            next_error, head = await self._post(rows, without_content=without_content)
            if next_error is None:
                await self._delete(rows, head)
                return
            error = next_error

    async def _delete(self, delivered: list[outbox.OutboxRow], head: Any = NO_HEAD) -> None:
        """Deletes acknowledged rows, storing the appservice's posted head and the last acknowledged row in
        the same transaction."""
        if delivered:
            last = delivered[-1]
            acked = {"seq": last.seq, "hash": last.hash} if last.hash else None
            posted = self._head if head is NO_HEAD else head
            await self._outbox.delete_range(delivered[0].seq, last.seq, posted, acked)
            self._head, self._acked = posted, acked
            health_stats.HEALTH.last_delivery_ts = int(self._api.get_current_time_msec())
            DELIVERED.inc(len(delivered))

    async def refresh_stats(self, force: bool = False) -> None:
        """Updates the outbox gauges, at most once a second unless forced."""
        now = time.monotonic()
        if not force and now - self._last_stats < 1.0:
            return
        self._last_stats = now
        depth, oldest_ts = await self._outbox.stats()
        health_stats.observe(depth, oldest_ts, int(self._api.get_current_time_msec()))


def _half_length(rows: list[outbox.OutboxRow]) -> int:
    """How many of ``rows`` to send after a 413: about half, never cutting a digest group."""
    lengths = whole_group_prefixes(rows)
    fitting = [n for n in lengths if n <= len(rows) // 2]
    return fitting[-1] if fitting else lengths[0]
