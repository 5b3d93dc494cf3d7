"""The keyed content digest: one key per server, made once; every recorded change carries its digest."""

import hashlib
import hmac

from synapse_account_data_audit import digest, outbox
from synapse_account_data_audit.store import create_tables_txn, record_txn

from .fakes import FakeDatabase


def test_the_key_is_made_once_and_then_read_back() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    first = db.run("", digest.digest_key_txn).result
    assert isinstance(first, bytes) and len(first) == 32
    assert db.run("", digest.digest_key_txn).result == first


def test_recorded_changes_carry_the_keyed_digest_on_the_wire() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    key = db.run("", digest.digest_key_txn).result
    assert isinstance(key, bytes)
    change = outbox.NewChange("c1", "@a:test.local", None, "m.secret_storage.key.k", '{"iv":"abc"}', 1)
    db.run("", record_txn, key, [change], False, True)
    rows = db.run("", outbox.fetch_batch_txn, 10, 1 << 20).result
    assert isinstance(rows, list)
    (row,) = rows
    assert isinstance(row, outbox.OutboxRow)
    expected = hmac.new(key, b'{"iv":"abc"}', hashlib.sha256).hexdigest()
    assert row.keyed_digest == expected
    assert row.to_wire()["keyed_digest"] == expected
    # Not a plain hash: without the key, a guess cannot be checked against it.
    assert expected != hashlib.sha256(b'{"iv":"abc"}').hexdigest()
