"""Claims' details (issue #25's mutation testing): the stored key hash's exact form, reading Synapse's rows
per room and in chunks, the last change of a key deciding, and pruning's boundaries."""

import hashlib
from typing import cast

from synapse_account_data_audit import claims
from synapse_account_data_audit.claims import AccountDataKey, claim_positions_txn, key_hash
from synapse_account_data_audit.outbox import NewChange

from .fakes import FakeDatabase, synapse_write
from .test_claims import ALICE, change, recorded, setup_db

BOB = "@bob:test.local"
ROOM = "!r:test.local"


def test_the_key_hash_is_the_first_63_bits_of_sha256_of_the_nul_joined_key() -> None:
    # Stored in the database and compared across versions: its form must never change.
    def expected(text: bytes) -> int:
        return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1

    assert key_hash(AccountDataKey(ALICE, None, "m.t")) == expected(b"@alice:test.local\x00\x00m.t")
    assert key_hash(AccountDataKey(ALICE, ROOM, "m.t")) == expected(
        b"@alice:test.local\x00!r:test.local\x00m.t"
    )
    assert key_hash(AccountDataKey("@\u00e9:x", None, "t")) == expected("@\u00e9:x\x00\x00t".encode())


def test_synapse_rows_are_read_for_global_and_room_keys_and_missing_ones_are_none() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.t", '{"g":1}', 5)
    synapse_write(db, ALICE, "m.t", '{"r":1}', 6, room=ROOM)
    assert db.run("", claims.read_row_txn, AccountDataKey(ALICE, None, "m.t")).result == (5, '{"g":1}')
    assert db.run("", claims.read_row_txn, AccountDataKey(ALICE, ROOM, "m.t")).result == (6, '{"r":1}')
    assert db.run("", claims.read_row_txn, AccountDataKey(ALICE, "!other:x", "m.t")).result is None
    assert db.run("", claims.read_row_txn, AccountDataKey(BOB, None, "m.t")).result is None


def test_rows_of_more_keys_than_one_statement_takes_are_all_read() -> None:
    db = setup_db()
    keys: set[AccountDataKey] = set()
    for n in range(250):
        synapse_write(db, ALICE, f"t{n}", f'{{"n":{n}}}', 1000 + n)
        synapse_write(db, BOB, f"t{n}", f'{{"n":{n}}}', 2000 + n, room=ROOM)
        keys |= {AccountDataKey(ALICE, None, f"t{n}"), AccountDataKey(BOB, ROOM, f"t{n}")}
    # Asked also for keys whose user and type exist, but not together: not found.
    keys.add(AccountDataKey(BOB, None, "t1"))
    rows = cast("dict[AccountDataKey, tuple[int, str]]", db.run("", claims.read_rows_txn, keys).result)
    assert len(rows) == 500
    assert rows[AccountDataKey(ALICE, None, "t249")] == (1249, '{"n":249}')
    assert rows[AccountDataKey(BOB, ROOM, "t0")] == (2000, '{"n":0}')
    assert AccountDataKey(BOB, None, "t1") not in rows


def test_more_claims_than_one_statement_takes_are_all_recorded() -> None:
    db = setup_db()
    db.run("", claims.insert_claims_txn, [(n, AccountDataKey(ALICE, None, f"t{n}")) for n in range(1, 251)])
    assert recorded(db) == list(range(1, 251))


def test_each_keys_last_change_in_a_batch_decides_and_other_keys_still_claim() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.a", '{"v":2}', 11)
    synapse_write(db, ALICE, "m.b", '{"v":1}', 12)
    batch: list[NewChange] = [
        change(1, '{"v":1}', "m.b"),
        change(2, '{"v":1}', "m.a"),
        change(3, '{"v":2}', "m.a"),  # the last of m.a: claims 11; the one before it claims nothing
    ]
    assert db.run("", claim_positions_txn, batch).result == [12, None, 11]


def test_pruning_starts_only_past_twice_the_claims_kept() -> None:
    db = setup_db()
    for position in range(1, 9):
        db.run("", claims.insert_claims_txn, [(position, AccountDataKey(ALICE, None, f"t{position}"))])
    assert db.run("", claims.prune_claims_txn, 4, True).result is None  # 8 claims, 2 * 4: not yet
    assert recorded(db) == list(range(1, 9))
    assert db.run("", claims.prune_claims_txn, 3, True).result == 5  # 8 > 6: keeps the newest 3
    assert recorded(db) == [6, 7, 8]


def test_pruning_with_recovery_pending_drops_claims_up_to_recovered_through_only() -> None:
    db = setup_db()
    db.run("", claims.set_state_txn, claims.STATE_RECOVERED_THROUGH, 3)
    for position in range(1, 9):
        db.run("", claims.insert_claims_txn, [(position, AccountDataKey(ALICE, None, f"t{position}"))])
    assert db.run("", claims.prune_claims_txn, 2, False).result == 3
    assert recorded(db) == [4, 5, 6, 7, 8]
    assert db.run("", claims.get_state_txn, claims.STATE_RECOVERED_THROUGH).result == 3


def test_pruning_never_moves_recovered_through_back() -> None:
    db = setup_db()
    db.run("", claims.set_state_txn, claims.STATE_RECOVERED_THROUGH, 50)
    for position in range(1, 9):
        db.run("", claims.insert_claims_txn, [(position, AccountDataKey(ALICE, None, f"t{position}"))])
    assert db.run("", claims.prune_claims_txn, 2, True).result == 6
    assert recorded(db) == [7, 8]
    assert db.run("", claims.get_state_txn, claims.STATE_RECOVERED_THROUGH).result == 50


def test_pruning_with_nothing_at_or_below_recovered_through_drops_nothing() -> None:
    db = FakeDatabase()
    from synapse_account_data_audit.store import create_tables_txn

    db.run("", create_tables_txn)
    db.run("", claims.set_state_txn, claims.STATE_RECOVERED_THROUGH, 3)
    for position in range(4, 12):
        db.run("", claims.insert_claims_txn, [(position, AccountDataKey(ALICE, None, f"t{position}"))])
    assert db.run("", claims.prune_claims_txn, 2, False).result is None
    assert recorded(db) == list(range(4, 12))


def test_pruning_after_recovery_moves_recovered_through_up_to_the_claims_dropped() -> None:
    db = setup_db()
    db.run("", claims.set_state_txn, claims.STATE_RECOVERED_THROUGH, 2)
    for position in range(1, 9):
        db.run("", claims.insert_claims_txn, [(position, AccountDataKey(ALICE, None, f"t{position}"))])
    assert db.run("", claims.prune_claims_txn, 2, True).result == 6
    assert recorded(db) == [7, 8]
    assert db.run("", claims.get_state_txn, claims.STATE_RECOVERED_THROUGH).result == 6
