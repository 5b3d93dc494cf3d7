"""Digest mode's policy as the appservice answers it, a user's lane, and what a large change counts (issue
#25's mutation testing): the bounds each is held to."""

import zlib

import pytest

from synapse_account_data_audit.digest_mode import DigestPolicy, counted_bytes, lane_of, plan_groups
from synapse_account_data_audit.outbox import OutboxRow

ANSWER = {"min_backlog": 10, "max_changes": 20, "max_bytes": 30_000, "lanes": 4}


def test_an_answer_is_read_as_given_within_bounds() -> None:
    assert DigestPolicy.from_answer(ANSWER) == DigestPolicy(10, 20, 30_000, 4)
    # Zero is a valid number (a backlog of none starts grouping at once).
    assert DigestPolicy.from_answer({**ANSWER, "min_backlog": 0}) == DigestPolicy(0, 20, 30_000, 4)
    # Appservices older than lanes leave them out: one lane.
    assert DigestPolicy.from_answer({k: v for k, v in ANSWER.items() if k != "lanes"}) == DigestPolicy(
        10, 20, 30_000, 1
    )


def test_an_answer_is_held_to_at_least_two_changes_one_byte_and_at_most_64_lanes() -> None:
    low = {"min_backlog": 0, "max_changes": 0, "max_bytes": 0, "lanes": 65}
    assert DigestPolicy.from_answer(low) == DigestPolicy(0, 2, 1, 64)
    edge = {"min_backlog": 1, "max_changes": 2, "max_bytes": 1, "lanes": 64}
    assert DigestPolicy.from_answer(edge) == DigestPolicy(1, 2, 1, 64)
    assert DigestPolicy.from_answer({**edge, "max_changes": 3, "max_bytes": 2}) == DigestPolicy(1, 3, 2, 64)


@pytest.mark.parametrize(
    "change",
    [
        {"min_backlog": -1},
        {"max_changes": 1.5},
        {"max_bytes": "100"},
        {"max_bytes": None},
        {"min_backlog": True},
        {"lanes": 0},
        {"lanes": True},
        {"lanes": 2.0},
    ],
)
def test_an_answer_that_is_not_understood_turns_digest_mode_off(change: dict[str, object]) -> None:
    assert DigestPolicy.from_answer({**ANSWER, **change}) is None


def test_an_answer_that_is_not_an_object_turns_digest_mode_off() -> None:
    assert DigestPolicy.from_answer(None) is None
    assert DigestPolicy.from_answer([10, 20, 30]) is None


def test_a_users_lane_is_crc32_of_the_user_id_modulo_the_lanes() -> None:
    for user in ("@alice:test.local", "@b:x", "@\u00e9:x"):
        lane = lane_of(user, 7)
        assert lane == zlib.crc32(user.encode("utf-8")) % 7
        assert isinstance(lane, int) and 0 <= lane < 7
    assert lane_of("@alice:test.local", 1) == 0


def row(content: str, data_type: str = "", room_id: str | None = None) -> OutboxRow:
    return OutboxRow("c", "@u:x", room_id, data_type, content, 0, seq=1)


def test_a_change_counts_its_size_but_at_most_an_eighth_of_the_group() -> None:
    policy = DigestPolicy(0, 10, 100)
    assert counted_bytes(row("x" * 5), policy) == 5
    assert counted_bytes(row("x" * 12), policy) == 12
    assert counted_bytes(row("x" * 13), policy) == 12  # 100 // 8
    assert counted_bytes(row("x" * 500), policy) == 12
    # The type and room ID are shown in the digest's line too: a long type counts like long content.
    assert counted_bytes(row("{}", "m.t", "!r:x"), policy) == 2 + 3 + 4
    assert counted_bytes(row("{}", "t" * 5000), policy) == 12
    # A group too small for eighths: each change still counts one byte at least.
    assert counted_bytes(row("x" * 50), DigestPolicy(0, 10, 15)) == 1
    assert counted_bytes(row("x" * 50), DigestPolicy(0, 10, 16)) == 2


def test_each_group_fills_the_byte_budget_exactly_not_only_the_first() -> None:
    # An eighth of 80 bytes is 10: each 10-byte change counts in full, 8 fill a group.
    rows = [OutboxRow(f"c{i}", "@u:x", None, "m.t", "x" * 10, i, seq=i) for i in range(1, 17)]
    groups = plan_groups(rows, DigestPolicy(0, 100, 80))
    assert [len(g) for g in groups] == [8, 8]
    assert groups[1] == list(range(9, 17))
