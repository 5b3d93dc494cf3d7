"""The delivery window: a budget of rows and weight in flight, not of requests."""

from synapse_account_data_audit.records import KIND_CHECKPOINT, OutboxRow
from synapse_account_data_audit.window import (
    GATHER_MAX_SECONDS,
    MAX_REQUESTS,
    PipelineWindow,
    row_weight,
)


def row(content: str, data_type: str = "m.t", room_id: str | None = None, kind: str = "change") -> OutboxRow:
    return OutboxRow("c", "@u:x", room_id, data_type, content, 0, kind=kind, seq=1)


def test_a_rows_weight_is_the_bytes_it_puts_in_flight() -> None:
    assert row_weight(row('{"a":1}')) == 3 + 7
    # The type and room ID travel too (a 5,000-character type is as heavy as 5,000 bytes of content).
    assert row_weight(row("{}", data_type="t" * 5000, room_id="!r:x")) == 5000 + 4 + 2


def test_content_over_the_cap_weighs_in_full_it_is_read_and_held_while_in_flight() -> None:
    big = "[" + ",".join("0" * 1000) + "]"
    assert row_weight(row(big)) == 3 + len(big)


def test_other_records_weigh_their_bytes() -> None:
    assert row_weight(row('{"a":1,"b":2}', data_type="", kind=KIND_CHECKPOINT)) == 13


def test_the_first_batch_always_goes_then_rows_and_weight_bound_the_rest() -> None:
    window = PipelineWindow(batches=2, batch_rows=3, batch_bytes=1000)
    huge = [row("x" * 5000)]
    assert window.has_room()
    weight = window.sent(huge)  # over every budget alone: sent all the same
    assert not window.has_room()
    window.answered(huge, weight)
    assert window.has_room() and window.requests == window.rows == window.weight == 0
    small = [row("{}")]
    for _ in range(5):
        window.sent(small)
    assert window.has_room()  # 5 rows of 6
    window.sent(small)
    assert not window.has_room()  # 2 batches of 3 rows


def test_requests_are_bounded_too_and_one_batch_means_one_request() -> None:
    window = PipelineWindow(batches=64, batch_rows=100, batch_bytes=1 << 30)
    for _ in range(MAX_REQUESTS):
        assert window.has_room()
        window.sent([row("{}")])
    assert not window.has_room()
    single = PipelineWindow(batches=1, batch_rows=100, batch_bytes=1 << 30)
    single.sent([row("{}")])
    assert not single.has_room()


def test_changes_gather_only_while_several_requests_are_open() -> None:
    window = PipelineWindow(batches=8, batch_rows=100, batch_bytes=1 << 30)
    gathered = []
    for _ in range(40):
        gathered.append(window.gather_seconds(last_was_full=False))
        window.sent([row("{}")])
    assert gathered[:4] == [0.0] * 4  # a change alone goes at once
    assert 0 < gathered[4] < gathered[10] <= GATHER_MAX_SECONDS
    assert gathered[-1] == GATHER_MAX_SECONDS
    # Behind a full batch the outbox holds a backlog: the next batch is full without waiting.
    assert window.gather_seconds(last_was_full=True) == 0.0
