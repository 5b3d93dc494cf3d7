import hashlib
from typing import Any

import pytest

from synapse_account_data_audit import chain, keyed_digest, outbox
from synapse_account_data_audit.store import create_tables_txn

from .fakes import FakeDatabase


def record(db: FakeDatabase, n: int, content: str = "{}") -> None:
    change = outbox.NewChange(f"id{n}", f"@u{n}:test.local", None, "m.test", content, 1000 + n)
    db.run("", outbox.insert_many_txn, b"key", [change])


def fetch(db: FakeDatabase, limit: int, max_bytes: int = 1 << 20) -> list[outbox.OutboxRow]:
    rows = db.run("", outbox.fetch_batch_txn, limit, max_bytes).result
    assert isinstance(rows, list)
    return rows


def setup_db() -> FakeDatabase:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    db.run("", create_tables_txn)  # idempotent
    return db


def test_rows_come_back_in_sequence_order_with_increasing_seq() -> None:
    db = setup_db()
    for n in range(5):
        record(db, n)
    rows = fetch(db, 10)
    assert [r.change_id for r in rows] == [f"id{n}" for n in range(5)]
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    (first,) = outbox.with_salts(b"key", rows[:1])
    salt = chain.salt_for(b"key", "id0")
    assert first.to_wire() == {
        "id": "id0",
        "seq": rows[0].seq,
        "ts": 1000,
        "user_id": "@u0:test.local",
        "room_id": None,
        "type": "m.test",
        "content": "{}",
        "content_size": 2,
        "commitment": "sha256:" + hashlib.sha256(f"{salt}{{}}".encode()).hexdigest(),
        "salt": salt,
        "keyed_digest": keyed_digest.keyed_digest_of_key(b"key", "@u0:test.local", None, "m.test", "{}"),
        "chain": {"prev": "0" * 64, "hash": rows[0].hash, "version": 2},
    }
    # Fetched without its salt (not stored), a content row refuses to go out rather than go out unbound.
    with pytest.raises(ValueError, match="salt"):
        rows[0].to_wire()
    # Each row links to the one before it, across transactions.
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]


def test_batches_are_capped_by_count_and_bytes_but_never_empty() -> None:
    db = setup_db()
    for n in range(5):
        record(db, n, '{"k":"' + "x" * 100 + '"}')
    assert len(fetch(db, 3)) == 3
    assert len(fetch(db, 10, max_bytes=250)) == 2
    assert len(fetch(db, 10, max_bytes=1)) == 1


def test_delete_range_and_seq_never_reused() -> None:
    db = setup_db()
    for n in range(3):
        record(db, n)
    last = fetch(db, 10)[-1].seq
    db.run("", outbox.delete_range_txn, fetch(db, 10)[0].seq, last)
    assert fetch(db, 10) == []
    record(db, 9)
    assert fetch(db, 10)[0].seq > last


def test_stats() -> None:
    db = setup_db()
    assert db.run("", outbox.stats_txn).result == (0, None)
    record(db, 1)
    record(db, 2)
    assert db.run("", outbox.stats_txn).result == (2, 1001)


def test_encode_content_keeps_python_values_and_accepts_frozen_mappings() -> None:
    from types import MappingProxyType

    content: dict[str, Any] = {"f": 1.0, "big": 2**70, "é": "😀", "nested": MappingProxyType({"t": (1, 2)})}
    assert outbox.encode_content(content) == (
        '{"f":1.0,"big":1180591620717411303424,"\\u00e9":"\\ud83d\\ude00","nested":{"t":[1,2]}}'
    )


def test_delete_range_leaves_rows_outside_it() -> None:
    db = setup_db()
    for n in range(5):
        record(db, n)
    seqs = [r.seq for r in fetch(db, 10)]
    db.run("", outbox.delete_range_txn, seqs[1], seqs[2])
    assert [r.seq for r in fetch(db, 10)] == [seqs[0], seqs[3], seqs[4]]
