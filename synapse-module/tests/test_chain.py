"""The hash chain: the canonical encoding (README's worked example), and a chain that continues across
transactions, outbox deletions and crash recovery."""

from synapse_account_data_audit import chain, outbox
from synapse_account_data_audit.store import create_tables_txn, record_txn

from .fakes import FakeDatabase

#: README, "The hash chain": the worked example anyone re-implementing the check can test against.
README_LINK = chain.Link(
    seq=1,
    change_id="5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5",
    ts=1700000000000,
    kind="change",
    user_id="@alice:example.org",
    room_id=None,
    account_data_type="im.vector.setting.theme",
    keyed_digest="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    prev_hash=chain.GENESIS,
)


def test_the_readme_example() -> None:
    assert chain.canonical(README_LINK) == (
        '["v1",1,"5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5",1700000000000,"change","@alice:example.org",null,'
        '"im.vector.setting.theme","hmac-sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",'
        '"0000000000000000000000000000000000000000000000000000000000000000"]'
    )
    assert (
        chain.record_hash(README_LINK) == "8f8d88c2457b4f091a37e740727f94cbc5d95858401e07cf39a7149325454056"
    )


def test_non_ascii_is_escaped_and_null_digests_stay_null() -> None:
    link = chain.Link(
        2, "a1b2", 1700000000123, "recovered", "@z:example.org", "!r:example.org", "é☃<x>", None, "3d"
    )
    assert chain.canonical(link) == (
        '["v1",2,"a1b2",1700000000123,"recovered","@z:example.org","!r:example.org","\\u00e9\\u2603<x>",null,"3d"]'
    )


def _fetch_one(db: FakeDatabase) -> outbox.OutboxRow:
    rows = db.run("", outbox.fetch_batch_txn, 10, 1 << 20).result
    assert isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], outbox.OutboxRow)
    return rows[0]


def _record(db: FakeDatabase, n: int) -> None:
    change = outbox.NewChange(f"c{n}", "@u:test.local", None, "m.t", f'{{"n":{n}}}', n)
    db.run("", record_txn, b"key", [change], False, True)


def test_the_chain_continues_across_writes_and_deletions() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    _record(db, 1)
    first = _fetch_one(db)
    db.run("", outbox.delete_range_txn, first.seq, first.seq)  # delivered
    _record(db, 2)
    second = _fetch_one(db)
    assert first.prev_hash == chain.GENESIS
    assert second.prev_hash == first.hash and first.hash is not None
    assert second.seq == first.seq + 1  # numbers are never reused, even after deletion
    assert second.hash == chain.record_hash(
        chain.Link(
            second.seq, "c2", 2, "change", "@u:test.local", None, "m.t", second.keyed_digest, first.hash
        )
    )
