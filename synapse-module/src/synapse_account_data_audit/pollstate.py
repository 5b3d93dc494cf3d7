"""Where a poll of one of Synapse's streams has got to, kept in ``account_data_audit_meta``.

Synapse allocates a stream ID before the transaction that uses it commits, so rows can become visible out of
order: a poll that has seen ID 12 may later see 11 commit. The poller therefore reads only up to the stream's
persisted position where it can (every ID at or below it has committed), and, as a second line of defence,
rescans ``WINDOW`` IDs behind its position every time and skips the IDs it already recorded there (kept with
the position). The state is written in the transaction that writes the records, so a record and the position
that says it was made commit together: exactly once across restarts and crashes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from synapse.storage.database import LoggingTransaction

from .meta import get_meta_txn, set_meta_txn

#: Stream IDs behind the position that every poll reads again (late commits land there).
WINDOW = 100


@dataclass(frozen=True)
class PollState:
    #: The highest stream ID recorded (or, at the first start, the position audited from).
    through: int
    #: The IDs recorded in (through - WINDOW, through]: a rescan skips them.
    recent: frozenset[int] = frozenset()
    #: Set by the first start: rows at or below it are Synapse's history from before the module, never new
    #: (dropped once the window has passed it).
    floor: int | None = None

    @property
    def low(self) -> int:
        """Rows above this are read by every poll."""
        return self.through - WINDOW

    def is_new(self, stream_id: int) -> bool:
        above = stream_id > self.low and (self.floor is None or stream_id > self.floor)
        return above and stream_id not in self.recent

    def advanced(self, recorded: Iterable[int]) -> PollState:
        """The state once ``recorded`` (new IDs) are recorded too."""
        ids = set(self.recent) | set(recorded)
        through = max([self.through, *ids])
        floor = self.floor if self.floor is not None and self.floor > through - WINDOW else None
        return PollState(through, frozenset(i for i in ids if i > through - WINDOW), floor)


def load_state_txn(txn: LoggingTransaction, name: str) -> PollState | None:
    text = get_meta_txn(txn, name)
    if text is None:
        return None
    value = json.loads(text)
    floor = value.get("floor")
    return PollState(
        int(value["through"]),
        frozenset(int(i) for i in value.get("recent", [])),
        int(floor) if floor is not None else None,
    )


def save_state_txn(txn: LoggingTransaction, name: str, state: PollState) -> None:
    value: dict[str, object] = {"through": state.through, "recent": sorted(state.recent)}
    if state.floor is not None:
        value["floor"] = state.floor
    text = json.dumps(value, separators=(",", ":"))
    set_meta_txn(txn, name, text)


def read_limit(batch: int) -> int:
    """Rows one query reads: the rescanned window's rows (all possibly seen already) plus a batch of new ones,
    so a poll always gets past the window."""
    return batch + WINDOW
