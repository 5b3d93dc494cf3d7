"""How much the delivery loop keeps in flight: a budget of rows and of the appservice's work, not of requests.

The appservice posts different users' records side by side, so a change reaches the room soon after the
appservice has it, whatever else it holds. What holds a change back is the delivery loop not sending it: while
the batches in flight are still being posted, the rows behind them wait in the outbox. A user who writes
thousands of changes that are slow to post (each near an event's size limit) fills the batches in flight, and
with a budget of two requests every other user's change waits until that user's backlog ahead of it is posted.

So the loop sends as many requests as fit in a budget of ``batches_in_flight`` full batches: rows
(``batches_in_flight x batch rows``) and bytes (``batches_in_flight x max_batch_bytes``), in at most
``MAX_REQUESTS`` requests. During a burst the loop sends small batches as changes arrive; counting requests
would stop it after a handful of them. The appservice keeps contents as text until it records them, and reads
only a few megabytes of them at once (its ``ContentBudget``), so the bytes in flight bound its memory.
"""

from __future__ import annotations

from typing import Any

from synapse.logging.context import PreserveLoggingContext
from synapse.module_api import make_deferred_yieldable
from twisted.internet import defer

from .records import OutboxRow

#: Requests open at once, at most (each is a connection to the appservice).
MAX_REQUESTS = 64
#: With this many requests open, the loop lets changes gather before it sends the next batch: during a burst
#: it would otherwise send one request per change and reach MAX_REQUESTS with a few dozen changes in flight.
GATHER_FROM_REQUESTS = 4
#: How long changes gather, per request open (at most GATHER_MAX_SECONDS): the more is in flight, the fuller
#: the next batch, and a single change still goes out within half a second.
GATHER_SECONDS_PER_REQUEST = 0.02
GATHER_MAX_SECONDS = 0.5


def row_weight(row: OutboxRow) -> int:
    """The bytes ``row`` holds while in flight: its type, room ID, details and content (a content over
    ``max_content_bytes`` too: it is delivered without it, but read and held all the same)."""
    return len(row.account_data_type) + len(row.room_id or "") + len(row.details or "") + len(row.content)


class PipelineWindow:
    """The rows and weight of the batches in flight, against the budget."""

    def __init__(self, batches: int, batch_rows: int, batch_bytes: int) -> None:
        self._max_rows = batches * batch_rows
        self._max_weight = batches * batch_bytes
        # One batch in flight means one request at a time (the loop waits for each answer).
        self._max_requests = 1 if batches <= 1 else MAX_REQUESTS
        self.requests = 0
        self.rows = 0
        self.weight = 0

    def has_room(self) -> bool:
        """Whether another batch may be sent now (always, with nothing in flight)."""
        if self.requests == 0:
            return True
        return (
            self.requests < self._max_requests
            and self.rows < self._max_rows
            and self.weight < self._max_weight
        )

    def gather_seconds(self, last_was_full: bool) -> float:
        """How long to let changes gather before fetching the next batch (0: fetch now). Only at the tail of
        the outbox: after a full batch, the next one is full too without waiting."""
        if last_was_full or self.requests < GATHER_FROM_REQUESTS:
            return 0.0
        return min(GATHER_MAX_SECONDS, GATHER_SECONDS_PER_REQUEST * self.requests)

    def sent(self, rows: list[OutboxRow]) -> int:
        """Counts a batch sent; returns its weight (to give back with ``answered``)."""
        weight = sum(row_weight(row) for row in rows)
        self.requests += 1
        self.rows += len(rows)
        self.weight += weight
        return weight

    def answered(self, rows: list[OutboxRow], weight: int) -> None:
        self.requests -= 1
        self.rows -= len(rows)
        self.weight -= weight


class NewChanges:
    """Lets the delivery loop, with nothing left to fetch, wait for the oldest answer or for a new change,
    whichever comes first: a change made while the batches in flight are still being posted is sent at once,
    not after the oldest of them is answered (which may take as long as one user's backlog ahead of it)."""

    def __init__(self) -> None:
        self._waiter: defer.Deferred[None] | None = None

    async def wait(self, answer: defer.Deferred[Any]) -> None:
        waiter: defer.Deferred[None] = defer.Deferred()
        self._waiter = waiter

        def answered(result: object) -> object:
            if not waiter.called:
                waiter.callback(None)
            return result  # unchanged, for the loop that awaits the answer itself

        answer.addBoth(answered)
        try:
            await make_deferred_yieldable(waiter)
        finally:
            self._waiter = None

    def notify(self) -> None:
        """A new change: ends the current wait, if any."""
        waiter = self._waiter
        if waiter is None or waiter.called:
            return
        # Fired from the sentinel context, as Synapse's log contexts require: the waiter restores its own.
        with PreserveLoggingContext():
            waiter.callback(None)
