"""The keyed content digest: one key per server, made once; every recorded change carries its keyed digest."""

import hashlib
import hmac

from synapse_account_data_audit import keyed_digest, outbox
from synapse_account_data_audit.store import create_tables_txn, record_txn

from .fakes import FakeDatabase


def test_the_key_is_made_once_and_then_read_back() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    first = db.run("", keyed_digest.keyed_digest_key_txn).result
    assert isinstance(first, bytes) and len(first) == 32
    assert db.run("", keyed_digest.keyed_digest_key_txn).result == first


def _record_and_fetch(
    db: FakeDatabase, key: bytes, changes: list[outbox.NewChange]
) -> list[outbox.OutboxRow]:
    db.run("", record_txn, key, changes, False, True)
    rows = db.run("", outbox.fetch_batch_txn, 100, 1 << 20).result
    assert isinstance(rows, list)
    db.run("", outbox.delete_range_txn, rows[0].seq, rows[-1].seq)
    return rows


def test_recorded_changes_carry_the_keyed_digest_of_their_key_and_value_on_the_wire() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    key = db.run("", keyed_digest.keyed_digest_key_txn).result
    assert isinstance(key, bytes)
    change = outbox.NewChange(
        "c1", "@a:test.local", "!r:test.local", "m.secret_storage.key.k", '{"iv":"abc"}', 1
    )
    (row,) = outbox.with_salts(key, _record_and_fetch(db, key, [change]))
    covered = b'["@a:test.local","!r:test.local","m.secret_storage.key.k","{\\"iv\\":\\"abc\\"}"]'
    expected = hmac.new(key, covered, hashlib.sha256).hexdigest()
    assert row.keyed_digest == expected
    assert row.to_wire()["keyed_digest"] == expected
    # Not a plain hash: without the key, a guess cannot be checked against it.
    assert expected != hashlib.sha256(b'{"iv":"abc"}').hexdigest()


def test_equal_values_of_different_keys_differ_and_a_repeated_value_keeps_its_digest() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    value = '{"key":"same"}'
    alice, bob, alice_again, alice_room, alice_other_type = _record_and_fetch(
        db,
        b"key",
        [
            outbox.NewChange("c1", "@alice:test.local", None, "m.secret_storage.key.k", value, 1),
            outbox.NewChange("c2", "@bob:test.local", None, "m.secret_storage.key.k", value, 2),
            outbox.NewChange("c3", "@alice:test.local", None, "m.secret_storage.key.k", value, 3),
            outbox.NewChange("c4", "@alice:test.local", "!r:test.local", "m.secret_storage.key.k", value, 4),
            outbox.NewChange("c5", "@alice:test.local", None, "m.secret_storage.key.j", value, 5),
        ],
    )
    # Bob cannot test guesses of Alice's withheld value by setting his own and comparing keyed digests.
    assert alice.keyed_digest != bob.keyed_digest
    assert alice.keyed_digest not in (alice_room.keyed_digest, alice_other_type.keyed_digest)
    # An auditor still sees that Alice's key went back to a value it had.
    assert alice.keyed_digest == alice_again.keyed_digest


def test_a_deactivation_is_digested_under_its_user_and_a_gap_over_its_details() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    facts = '{"deactivated":true,"by_admin":false}'
    deactivation, gap = _record_and_fetch(
        db,
        b"key",
        [
            outbox.NewChange("d1", "@alice:test.local", None, "", facts, 1, kind=outbox.KIND_DEACTIVATION),
            outbox.NewChange("g1", "", None, "", "{}", 2, kind=outbox.KIND_GAP, details='{"lost":1}'),
        ],
    )
    assert deactivation.keyed_digest == keyed_digest.keyed_digest_of_key(
        b"key", "@alice:test.local", None, "", facts
    )
    assert gap.keyed_digest == keyed_digest.keyed_digest(b"key", '{"lost":1}')
