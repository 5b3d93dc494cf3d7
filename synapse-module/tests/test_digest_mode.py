"""Digest mode: groups are decided once, recorded in the outbox, and never straddle a batch."""

from synapse_account_data_audit import outbox
from synapse_account_data_audit.delivery import _half_length
from synapse_account_data_audit.digest_mode import (
    DigestPolicy,
    fetch_for_delivery_txn,
    lane_of,
    plan_groups,
    whole_group_prefixes,
)
from synapse_account_data_audit.outbox import KIND_GAP, NewChange
from synapse_account_data_audit.store import create_tables_txn, record_txn

from .fakes import FakeDatabase

POLICY = DigestPolicy(min_backlog=5, max_changes=3, max_bytes=1000)


def setup(n: int, gap_at: int | None = None, users: tuple[str, ...] = ("@u:test.local",)) -> FakeDatabase:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    changes = [
        NewChange(
            f"c{i}",
            users[(i - 1) % len(users)],
            None,
            "m.t",
            f'{{"i":{i}}}',
            i,
            kind=KIND_GAP if i == gap_at else "change",
        )
        for i in range(1, n + 1)
    ]
    db.run("", record_txn, b"k", changes, False, True)
    return db


def fetch(
    db: FakeDatabase, limit: int, after: int = 0, policy: DigestPolicy | None = POLICY
) -> list[outbox.OutboxRow]:
    rows = db.run("", fetch_for_delivery_txn, limit, 1 << 20, after, policy).result
    assert isinstance(rows, list)
    return rows


def groups(rows: list[outbox.OutboxRow]) -> list[int | None]:
    return [row.digest_group for row in rows]


def test_consecutive_changes_are_grouped_up_to_the_limits_and_a_notice_ends_a_group() -> None:
    db = setup(9, gap_at=4)
    rows = fetch(db, 9)
    # 1-3 (max 3 changes), the gap notice alone (0), 5-7, then 8-9.
    assert groups(rows) == [1, 1, 1, 0, 5, 5, 5, 8, 8]
    wire = [row.to_wire() for row in outbox.with_salts(b"k", rows)]
    assert "digest_group" not in wire[3]
    assert wire[0]["digest_group"] == 1
    assert plan_groups(rows, POLICY) == []  # recorded: nothing left to group


def test_groups_are_recorded_and_kept_by_every_later_fetch() -> None:
    db = setup(9)
    first = groups(fetch(db, 9))
    assert groups(fetch(db, 9, policy=DigestPolicy(0, 9, 1000))) == first  # another policy changes nothing
    assert groups(fetch(db, 9, policy=None)) == first


def test_no_groups_without_a_backlog() -> None:
    assert groups(fetch(setup(5), 5)) == [0] * 5  # 5 waiting, min_backlog 5: each goes alone


def test_the_backlog_counts_the_rows_in_flight_too() -> None:
    db = setup(9)
    # 6 rows are in batches not yet answered: the 3 after them are part of a backlog of 9, not of 3.
    rows = db.run("", fetch_for_delivery_txn, 9, 1 << 20, 6, POLICY, frozenset(), 0).result
    assert isinstance(rows, list)
    assert groups(rows) == [7, 7, 7]
    assert groups(fetch(setup(9), 9, after=6)) == [0, 0, 0]  # counted from after_seq alone: no backlog


def test_a_row_once_sent_alone_is_never_grouped_later() -> None:
    db = setup(9)
    assert groups(fetch(db, 4, policy=None)) == [0] * 4  # sent without digests (maybe posted)
    assert groups(fetch(db, 9)) == [0, 0, 0, 0, 5, 5, 5, 8, 8]


def test_a_batch_never_ends_inside_a_group() -> None:
    db = setup(9)
    fetch(db, 9)  # groups 1-3, 4-6, 7-9
    assert [r.seq for r in fetch(db, 5)] == [1, 2, 3]  # 4-6 does not fit whole
    assert [r.seq for r in fetch(db, 2, after=3)] == [4, 5, 6]  # a group larger than the batch goes whole


# Users in different lanes of two (crc32 of the user ID).
A, C = "@a:test.local", "@c:test.local"
LANES = DigestPolicy(min_backlog=0, max_changes=3, max_bytes=1000, lanes=2)


def test_users_in_different_lanes_get_groups_of_their_own_which_share_no_user() -> None:
    assert lane_of(A, 2) != lane_of(C, 2)
    assert lane_of(A, 2) == lane_of(A, 2)
    db = setup(10, users=(A, C))  # A: 1, 3, 5, 7, 9; C: 2, 4, 6, 8, 10
    rows = fetch(db, 10, policy=LANES)
    assert groups(rows) == [1, 2, 1, 2, 1, 2, 7, 8, 7, 8]
    assert LANES.batch_rows == 6


def same_lane_users(count: int, lanes: int) -> list[str]:
    """``count`` user IDs that all share one lane."""
    users = [f"@u{i}:test.local" for i in range(10 * count * lanes)]
    lane = lane_of(users[0], lanes)
    return [u for u in users if lane_of(u, lanes) == lane][:count]


def test_a_user_with_many_changes_never_shares_a_group_with_its_lane() -> None:
    flooder, one, two = same_lane_users(3, 2)
    db = FakeDatabase()
    db.run("", create_tables_txn)
    who = [flooder, flooder, one, flooder, two, flooder, flooder]
    changes = [NewChange(f"c{i}", u, None, "m.t", "{}", i) for i, u in enumerate(who, start=1)]
    db.run("", record_txn, b"k", changes, False, True)
    # The flooder's changes (1, 2, 4 | 6, 7) group on their own; the single changes of its lane share one.
    assert groups(fetch(db, 7, policy=LANES)) == [1, 1, 3, 1, 3, 6, 6]


def test_a_user_with_changes_in_flight_is_busy_even_with_one_change_in_the_batch() -> None:
    flooder, one = same_lane_users(2, 2)
    rows = [
        outbox.OutboxRow(f"c{i}", u, None, "m.t", "{}", i, seq=i)
        for i, u in enumerate([one, flooder], start=1)
    ]
    assert plan_groups(rows, LANES) == [[1, 2]]  # two single changes of one lane
    # The flooder has changes in batches not yet answered: a group with it would wait behind them.
    assert plan_groups(rows, LANES, busy=frozenset({flooder})) == []


def test_a_notice_ends_every_lanes_group() -> None:
    db = setup(8, gap_at=5, users=(A, C))
    assert groups(fetch(db, 8, policy=LANES)) == [1, 2, 1, 2, 0, 6, 0, 6]  # 7 (@a) has no partner: alone


def test_a_batch_never_cuts_groups_that_interleave() -> None:
    db = setup(10, users=(A, C))
    fetch(db, 10, policy=LANES)  # A: {1,3,5} {7,9}; C: {2,4,6} {8,10}
    assert [r.seq for r in fetch(db, 8, policy=LANES)] == [1, 2, 3, 4, 5, 6]  # {7,9} and {8,10} go on
    # A first group that goes on past a small batch comes whole, with every group it crosses.
    assert [r.seq for r in fetch(db, 2, policy=LANES)] == [1, 2, 3, 4, 5, 6]
    assert [r.seq for r in fetch(db, 1, after=6, policy=LANES)] == [7, 8, 9, 10]


def test_a_413_halves_a_batch_without_cutting_a_group() -> None:
    db = setup(10, users=(A, C))
    rows = fetch(db, 10, policy=LANES)
    assert whole_group_prefixes(rows) == [6, 10]
    assert _half_length(rows) == 6  # the half (5) would cut both first groups: the smallest whole prefix
    assert _half_length(rows[:6]) == 6  # cannot be halved
    alone = fetch(setup(4), 4, policy=None)
    assert _half_length(alone) == 2


def test_lanes_come_from_the_answer_and_default_to_one() -> None:
    settings = {"min_backlog": 1, "max_changes": 5, "max_bytes": 1000}
    assert DigestPolicy.from_answer(settings) == DigestPolicy(1, 5, 1000, 1)
    assert DigestPolicy.from_answer({**settings, "lanes": 4}) == DigestPolicy(1, 5, 1000, 4)
    assert DigestPolicy.from_answer({**settings, "lanes": 0}) is None
    assert DigestPolicy.from_answer({**settings, "lanes": True}) is None


def test_the_delivery_loop_stores_the_appservices_digest_settings_to_use_after_a_restart() -> None:
    from unittest.mock import Mock

    from twisted.internet import defer

    from synapse_account_data_audit import AccountDataAuditModule, AuditModuleConfig

    from .fakes import make_api

    db = FakeDatabase()
    api = make_api(db)
    settings = {"min_backlog": 1, "max_changes": 5, "max_bytes": 1000}
    api.appservice.return_value = {"acknowledged_through": None, "digest": settings}
    module = AccountDataAuditModule(
        AuditModuleConfig(appservice_url="http://as.test", token="t"), api, Mock()
    )
    defer.ensureDeferred(module.on_account_data_updated("@u:test.local", None, "m.t", {}))
    stored = db.conn.execute(
        "SELECT value FROM account_data_audit_meta WHERE name = 'digest_settings'"
    ).fetchone()
    assert stored is not None and '"max_changes":5' in stored[0]


def test_large_changes_share_a_group_instead_of_going_one_by_one() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    big = '{"s":"' + "x" * 5000 + '"}'
    changes = [NewChange(f"c{i}", "@u:test.local", None, "m.t", big, i) for i in range(1, 11)]
    db.run("", record_txn, b"k", changes, False, True)
    policy = DigestPolicy(min_backlog=0, max_changes=50, max_bytes=1000)
    # Each counts 1000 // 8 = 125 bytes: 8 to a group, then the last 2.
    assert groups(fetch(db, 10, policy=policy)) == [1] * 8 + [9, 9]
