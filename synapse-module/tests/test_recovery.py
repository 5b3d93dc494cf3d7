"""Crash recovery: what is recovered, what is a gap, and that nothing is recorded twice."""

import json
from itertools import count
from typing import Any

from synapse_account_data_audit import claims
from synapse_account_data_audit.claims import AccountDataKey, key_hash
from synapse_account_data_audit.recovery import StoredRow, plan_recovery, recover_txn
from synapse_account_data_audit.store import create_tables_txn, record_txn

from .fakes import FakeDatabase, synapse_tag, synapse_write

ALICE, BOB = "@alice:test.local", "@bob:test.local"
K = AccountDataKey(ALICE, None, "m.k")
X = AccountDataKey(ALICE, None, "m.x")
R = AccountDataKey(BOB, "!r:test.local", "m.fully_read")


def row(position: int, key: AccountDataKey) -> StoredRow:
    return StoredRow(position, key)


# --- planning (pure) ---


def test_nothing_to_do_when_every_row_in_the_window_was_recorded() -> None:
    plan = plan_recovery(
        [row(12, K), row(13, X)], [], {11: key_hash(K), 12: key_hash(K), 13: key_hash(X)}, 10, 13
    )
    assert plan.recover == [] and plan.gap_keys == [] and plan.lost == 0 and plan.unattributed == 0


def test_unrecorded_rows_are_recovered_in_stream_order_without_a_gap_when_every_position_is_accounted() -> (
    None
):
    plan = plan_recovery([row(13, X), row(12, K)], [], {11: key_hash(R)}, 10, 13)
    assert plan.recover == [row(12, K), row(13, X)]
    assert plan.gap_keys == []


def test_a_key_changed_twice_unrecorded_is_a_gap_naming_it() -> None:
    # Position 11 was K's first change: overwritten by 12, and nothing else accounts for it.
    plan = plan_recovery([row(12, K)], [], {}, 10, 12)
    assert plan.recover == [row(12, K)]
    assert [(g.key, g.unaccounted, g.recovered) for g in plan.gap_keys] == [(K, 1, True)]
    assert plan.lost == 1 and plan.unattributed == 0


def test_a_gap_is_looked_for_only_after_the_keys_last_recorded_change() -> None:
    # 11 is unaccounted, but K's change at 12 was recorded: K's lost values would lie after 12.
    plan = plan_recovery([row(13, K)], [], {12: key_hash(K)}, 10, 13)
    assert plan.recover == [row(13, K)]
    assert plan.gap_keys == [] and plan.unattributed == 1


def test_an_unaccounted_position_before_two_recovered_keys_names_both_and_counts_once() -> None:
    plan = plan_recovery([row(12, X), row(13, K)], [], {}, 10, 13)
    assert [g.key for g in plan.gap_keys] == [X, K]
    assert plan.lost == 1


def test_room_tags_and_rows_of_other_keys_account_for_positions() -> None:
    plan = plan_recovery([row(14, K), row(12, R)], [11], {12: key_hash(R), 13: key_hash(X)}, 10, 14)
    assert plan.recover == [row(14, K)] and plan.gap_keys == []


def test_rows_past_the_fence_are_this_runs_changes_never_recovered() -> None:
    plan = plan_recovery([row(21, K)], [], {}, 10, 20)
    assert plan.recover == []
    # ...but if positions before the restart are unaccounted, K may have lost a value to its newer one.
    assert [(g.key, g.recovered, g.unaccounted) for g in plan.gap_keys] == [(K, False, 10)]


# --- the transaction ---

FENCE_1, FENCE_2 = 100, 110


def setup_db(fence: int = FENCE_1) -> FakeDatabase:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    recover(db, fence)  # the first start with the module: audit from here on
    return db


def recover(db: FakeDatabase, fence: int) -> Any:
    ids = count(1)
    return db.run("", recover_txn, fence, 5_000, lambda: f"r{next(ids)}", b"key").result


def outbox(db: FakeDatabase) -> list[tuple[str, str, str, str | None, int | None, str | None]]:
    return list(
        db.conn.execute(
            "SELECT kind, user_id, account_data_type, content, stream_id, details"
            " FROM account_data_audit_outbox ORDER BY seq"
        )
    )


def test_the_first_start_recovers_nothing_and_sets_the_window_start() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    synapse_write(db, ALICE, "m.history", "{}", 50)
    result = recover(db, FENCE_1)
    assert result.window is None and outbox(db) == []
    assert db.run("", claims.get_state_txn, claims.STATE_RECOVERED_THROUGH).result == FENCE_1


def test_recovers_unrecorded_changes_once_with_a_gap_notice_first() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.early", '{"n":1}', 101)
    db.run("", record_txn, b"k", [change("m.early", '{"n":1}')], False, True)  # recorded normally: claims 101
    synapse_write(db, ALICE, "m.x", '{"x":1}', 102)  # in the writer's window when Synapse died
    synapse_write(db, ALICE, "m.k", '{"v":"a"}', 103)
    synapse_write(db, ALICE, "m.k", '{"v":"b"}', 104)  # overwrites 103
    synapse_tag(db, BOB, "!r:test.local", 105)
    result = recover(db, FENCE_2)
    assert result.window == (FENCE_1, FENCE_2)
    rows = outbox(db)
    assert [r[:5] for r in rows[:1] + rows[2:]] == [
        ("change", ALICE, "m.early", '{"n":1}', 101),
        ("recovered", ALICE, "m.x", '{"x":1}', 102),
        ("recovered", ALICE, "m.k", '{"v":"b"}', 104),
    ]
    kind, _, _, _, _, details = rows[1]
    assert kind == "gap"
    gap = json.loads(details or "")
    # 103 is unaccounted and lies before m.k's value (m.x's range, 101-101, is accounted for); 106-110 are
    # unaccounted too, but after every key's value.
    assert gap["lost"] == 1
    assert [(k["user_id"], k["type"], k["latest"], k["unaccounted"]) for k in gap["keys"]] == [
        (ALICE, "m.k", "recovered", 1)
    ]
    assert result.unattributed == 5
    # Nothing twice: running again finds nothing, and recovered positions are claimed.
    assert recover(db, FENCE_2).window is None
    assert len(outbox(db)) == 4
    assert db.run("", claims.get_state_txn, claims.STATE_RECOVERED_THROUGH).result == FENCE_2


def test_the_next_window_starts_at_the_fence_and_old_claims_are_dropped() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.a", "{}", 101)
    db.run("", record_txn, b"k", [change("m.a", "{}")], False, True)
    recover(db, FENCE_2)
    assert list(db.conn.execute("SELECT stream_id FROM account_data_audit_recorded")) == []
    synapse_write(db, ALICE, "m.b", '{"b":1}', 111)
    result = recover(db, 120)
    assert result.window == (FENCE_2, 120)
    assert [r[2] for r in outbox(db)] == ["m.a", "m.b"]


def change(data_type: str, content: str) -> Any:
    from synapse_account_data_audit.outbox import NewChange

    return NewChange("n1", ALICE, None, data_type, content, 4_000)
