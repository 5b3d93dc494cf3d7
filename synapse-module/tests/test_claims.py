"""Claims: the writer records which of Synapse's stream positions the outbox holds, in one transaction."""

from synapse_account_data_audit import claims
from synapse_account_data_audit.outbox import NewChange
from synapse_account_data_audit.recovery import RecoveryResult, recover_txn
from synapse_account_data_audit.store import create_tables_txn, record_txn

from .fakes import FakeDatabase, synapse_write

ALICE = "@alice:test.local"
KEY = b"test keyed-digest key"


def change(n: int, content: str, data_type: str = "m.t", room: str | None = None) -> NewChange:
    return NewChange(f"c{n}", ALICE, room, data_type, content, 1000 + n)


def setup_db() -> FakeDatabase:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    return db


def record(db: FakeDatabase, changes: list[NewChange], prune: bool = False, advance: bool = True) -> None:
    db.run("", record_txn, KEY, changes, prune, advance)


def recorded(db: FakeDatabase) -> list[int]:
    return [row[0] for row in db.conn.execute("SELECT stream_id FROM account_data_audit_recorded ORDER BY 1")]


def outbox_positions(db: FakeDatabase) -> list[tuple[str, int | None]]:
    return list(db.conn.execute("SELECT change_id, stream_id FROM account_data_audit_outbox ORDER BY seq"))


def test_a_change_claims_the_position_of_the_row_that_still_holds_it() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.t", '{"a":1}', 7)
    synapse_write(db, ALICE, "m.r", '{"b":2}', 8, room="!r:test.local")
    record(db, [change(1, '{"a":1}'), change(2, '{"b":2}', "m.r", "!r:test.local")])
    assert recorded(db) == [7, 8]
    assert outbox_positions(db) == [("c1", 7), ("c2", 8)]


def test_a_change_already_overwritten_claims_nothing_its_successor_claims_later() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.t", '{"v":2}', 9)  # change 1 ({"v":1}, position 8) was overwritten
    record(db, [change(1, '{"v":1}')])
    assert recorded(db) == []
    record(db, [change(2, '{"v":2}')])
    assert recorded(db) == [9]
    assert outbox_positions(db) == [("c1", None), ("c2", 9)]


def test_of_several_changes_of_a_key_in_one_write_only_the_last_matching_one_claims() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.t", '{"v":1}', 12)  # set to 1, then 2, then 1 again
    record(db, [change(1, '{"v":1}'), change(2, '{"v":2}'), change(3, '{"v":1}')])
    assert outbox_positions(db) == [("c1", None), ("c2", None), ("c3", 12)]


def test_an_a_b_a_rewrite_lets_no_earlier_change_claim_the_later_ones_position() -> None:
    db = setup_db()
    # Set to 1 (position 10), then 2 (11), then 1 again (12); the batch holds the first two changes, the
    # third's callback has not come yet. Position 12 is the third change's: nothing in this batch claims it.
    synapse_write(db, ALICE, "m.t", '{"v":1}', 12)
    record(db, [change(1, '{"v":1}'), change(2, '{"v":2}')])
    assert outbox_positions(db) == [("c1", None), ("c2", None)]
    assert recorded(db) == []


def test_claiming_a_position_again_is_a_no_op() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.t", '{"v":1}', 5)
    record(db, [change(1, '{"v":1}')])
    record(db, [change(2, '{"v":1}')])  # the same value again, seen before Synapse's row moved on
    assert recorded(db) == [5]


def test_deleting_a_key_that_does_not_exist_claims_nothing() -> None:
    db = setup_db()
    record(db, [change(1, "{}")])
    assert recorded(db) == []


def test_pruning_keeps_the_newest_claims_and_moves_recovered_through_past_the_dropped_ones() -> None:
    db = setup_db()
    for position in range(1, 8):
        db.run("", claims.insert_claims_txn, [(position, claims.AccountDataKey(ALICE, None, f"t{position}"))])
    assert db.run("", claims.prune_claims_txn, 4, True).result is None  # 7 <= 2 * 4: nothing yet
    assert db.run("", claims.prune_claims_txn, 2, True).result == 5
    assert recorded(db) == [6, 7]
    assert db.run("", claims.get_state_txn, claims.STATE_RECOVERED_THROUGH).result == 5


def test_pruning_before_this_runs_recovery_finished_keeps_what_recovery_needs() -> None:
    db = setup_db()
    db.run("", claims.set_state_txn, claims.STATE_RECOVERED_THROUGH, 1)
    for position in range(2, 9):
        db.run("", claims.insert_claims_txn, [(position, claims.AccountDataKey(ALICE, None, f"t{position}"))])
    # recovered_through stays (the window up to this run's fence is still to be looked at), and so does every
    # claim above it: the recovery still to come needs them.
    assert db.run("", claims.prune_claims_txn, 2, False).result is None
    assert db.run("", claims.get_state_txn, claims.STATE_RECOVERED_THROUGH).result == 1
    assert recorded(db) == list(range(2, 9))


def test_claims_pruned_while_recovery_is_pending_are_not_recovered_again() -> None:
    db = setup_db()
    db.run("", claims.set_state_txn, claims.STATE_RECOVERED_THROUGH, 100)
    # Recorded while this run's recovery had not finished (e.g. it kept failing), then pruned.
    for position in range(101, 109):
        synapse_write(db, ALICE, f"t{position}", '{"v":1}', position)
        record(db, [change(position, '{"v":1}', f"t{position}")], prune=False)
    db.run("", claims.prune_claims_txn, 2, False)
    result = db.run("", recover_txn, 110, 5_000, lambda: "r", b"key").result
    assert isinstance(result, RecoveryResult)
    assert result.recovered == []
    assert [kind for (kind,) in db.conn.execute("SELECT kind FROM account_data_audit_outbox")] == [
        "change"
    ] * 8


def test_key_hash_is_stable_and_fits_a_signed_bigint() -> None:
    key = claims.AccountDataKey(ALICE, "!r:test.local", "m.fully_read")
    assert claims.key_hash(key) == claims.key_hash(
        claims.AccountDataKey(ALICE, "!r:test.local", "m.fully_read")
    )
    assert claims.key_hash(key) != claims.key_hash(claims.AccountDataKey(ALICE, None, "m.fully_read"))
    assert 0 <= claims.key_hash(key) < 2**63
