"""The outbox's rows as written and read back (issue #25's mutation testing): every field survives the round
trip, a batch's rows each link to the one before at their own seq, and the byte budget's boundary."""

from synapse_account_data_audit import chain, outbox
from synapse_account_data_audit.records import (
    KIND_GAP,
    SOURCE_CALLBACK,
    SOURCE_TAGS,
    NewChange,
    OutboxRow,
    link_hash,
)

from .test_outbox import fetch, setup_db


def extra(r: OutboxRow) -> tuple[object, ...]:
    return (r.stream_id, r.details, r.source, r.chain_version)


def test_every_field_comes_back_as_written() -> None:
    db = setup_db()
    written = [
        NewChange("a1", "@a:x", "!r:x", "m.t", '{"v":1}', 5, stream_id=77, source=SOURCE_TAGS),
        NewChange("g1", "", None, "", "{}", 6, kind=KIND_GAP, details='{"lost":1}'),
        NewChange("a2", "@a:x", None, "m.u", "{}", 7),
    ]
    db.run("", outbox.insert_many_txn, b"key", written)
    rows = fetch(db, 10)
    fields = [
        (r.change_id, r.user_id, r.room_id, r.account_data_type, r.content, r.created_ts, r.kind, *extra(r))
        for r in rows
    ]
    assert fields == [
        ("a1", "@a:x", "!r:x", "m.t", '{"v":1}', 5, "change", 77, None, SOURCE_TAGS, chain.CURRENT_VERSION),
        (
            "g1",
            "",
            None,
            "",
            "{}",
            6,
            KIND_GAP,
            None,
            '{"lost":1}',
            SOURCE_CALLBACK,
            chain.CURRENT_VERSION,
        ),
        (
            "a2",
            "@a:x",
            None,
            "m.u",
            "{}",
            7,
            "change",
            None,
            None,
            SOURCE_CALLBACK,
            chain.CURRENT_VERSION,
        ),
    ]
    # The callback, the default source, is stored as NULL.
    assert [s for (s,) in db.conn.execute("SELECT source FROM account_data_audit_outbox ORDER BY seq")] == [
        SOURCE_TAGS,
        None,
        None,
    ]


def test_a_batchs_rows_each_link_to_the_one_before_at_their_own_seq() -> None:
    db = setup_db()
    changes = [NewChange(f"c{i}", "@a:x", None, "m.t", f'{{"i":{i}}}', i) for i in range(4)]
    written = db.run("", outbox.insert_many_txn, b"key", changes).result
    assert isinstance(written, list)
    rows = outbox.with_salts(b"key", fetch(db, 10))
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    prev = chain.GENESIS
    for row in rows:
        assert row.prev_hash == prev
        assert row.hash == link_hash(row, row.seq, prev)
        prev = row.hash or ""
    assert [r.hash for r in written if isinstance(r, OutboxRow)] == [r.hash for r in rows]


def test_a_batch_takes_rows_while_they_fit_in_the_byte_budget_exactly() -> None:
    db = setup_db()
    for i in range(3):
        db.run("", outbox.insert_many_txn, b"key", [NewChange(f"c{i}", "@a:x", None, "m.t", "x" * 7, i)])
    # Each row counts its content (7) and its type (3): 10 bytes.
    assert [r.change_id for r in fetch(db, 10, max_bytes=20)] == ["c0", "c1"]
    assert [r.change_id for r in fetch(db, 10, max_bytes=19)] == ["c0"]
    assert [r.change_id for r in fetch(db, 10, max_bytes=1)] == ["c0"]  # always at least one
