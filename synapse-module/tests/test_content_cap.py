"""max_content_bytes: a change with more content goes out without it (the appservice quarantines it)."""

from __future__ import annotations

import json

from synapse_account_data_audit import outbox
from synapse_account_data_audit.config import parse_config
from synapse_account_data_audit.records import seal
from synapse_account_data_audit.store import create_tables_txn

from .fakes import FakeDatabase

CAP = 1024


def _row(content: str) -> outbox.OutboxRow:
    change = outbox.NewChange("c1", "@a:example.org", None, "org.example.t", content, 7)
    sealed = seal(b"k", change)
    return outbox.OutboxRow(**{**vars(sealed), "salt": "00" * 16}, seq=3, chain_version=2)


def test_content_over_the_cap_goes_without_it_and_keeps_what_its_link_covers() -> None:
    content = json.dumps({"blob": "é" * CAP})
    wire = _row(content).to_wire(content_cap=CAP)
    size = len(content.encode("utf-8"))
    assert wire["content"] is None
    assert wire["content_omitted"] == {"size": size, "reason": "over_cap"}
    assert wire["content_size"] == size and wire["commitment"] and wire["salt"] == "00" * 16


def test_content_at_the_cap_goes_whole() -> None:
    content = '{"b":"' + "x" * (CAP - 8) + '"}'
    assert len(content.encode("utf-8")) == CAP
    wire = _row(content).to_wire(content_cap=CAP)
    assert wire["content"] == content and "content_omitted" not in wire


def test_without_content_says_too_large_whatever_the_cap() -> None:
    wire = _row("{}").to_wire(without_content=True, content_cap=CAP)
    assert wire["content"] is None and wire["content_omitted"] == {"size": 2, "reason": "too_large"}


def test_the_cap_defaults_to_a_mebibyte_and_is_checked() -> None:
    base = {"appservice_url": "http://127.0.0.1:9993", "token": "t"}
    assert parse_config(base).max_content_bytes == 1024 * 1024
    assert parse_config({**base, "max_content_bytes": 4096}).max_content_bytes == 4096
    for bad in (0, 100, "1M", True):
        try:
            parse_config({**base, "max_content_bytes": bad})
        except Exception as e:
            assert "max_content_bytes" in str(e)
        else:
            raise AssertionError(f"accepted max_content_bytes={bad!r}")


def _outbox_with(*changes: tuple[str, str]) -> FakeDatabase:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    for n, (data_type, content) in enumerate(changes):
        change = outbox.NewChange(f"id{n}", "@a:example.org", None, data_type, content, 1000 + n)
        db.run("", outbox.insert_many_txn, b"key", [change])
    return db


def _fetch(db: FakeDatabase, max_bytes: int) -> list[str]:
    rows = db.run("", outbox.fetch_batch_txn, 100, max_bytes).result
    assert isinstance(rows, list)
    return [row.change_id for row in rows]


def test_a_batch_counts_the_type_too() -> None:
    # Types of any length are stored (Synapse's limit is its request line): 100 rows of long types with
    # empty contents must not make one huge request.
    db = _outbox_with(("t" * 600, "{}"), ("t" * 600, "{}"), ("t" * 600, "{}"))
    assert _fetch(db, 1300) == ["id0", "id1"]


def test_a_large_row_goes_alone_and_the_rows_after_it_wait_for_the_next_batch() -> None:
    big = json.dumps({"blob": "x" * 5000})
    db = _outbox_with(("m.a", "{}"), ("m.b", big), ("m.c", "{}"))
    assert _fetch(db, 1000) == ["id0"]
    after_first = db.run("", outbox.fetch_batch_txn, 100, 1000, 1).result
    assert isinstance(after_first, list)
    assert [(row.change_id, row.content) for row in after_first] == [("id1", big)]
    assert _fetch(db, 1 << 20) == ["id0", "id1", "id2"]


def test_a_content_over_the_cap_still_counts_in_full_it_is_read_and_held() -> None:
    # Delivered without their contents, but read (size, commitment) and held while in flight: a batch of many
    # of them would hold gigabytes in Synapse's memory.
    big = json.dumps({"blob": "x" * 5000})
    db = _outbox_with(("m.a", big), ("m.b", big), ("m.c", big))
    assert _fetch(db, 1000) == ["id0"]


def test_an_empty_outbox_gives_no_batch() -> None:
    assert _fetch(_outbox_with(), 10) == []
