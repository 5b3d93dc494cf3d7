"""The hash chain: the canonical encodings (README's worked examples, v2 and v1), and a chain that continues
across transactions, outbox deletions, crash recovery and the upgrade from version 1."""

import hashlib
import json

from synapse_account_data_audit import chain, keyed_digest, outbox, records
from synapse_account_data_audit.store import create_tables_txn, record_txn

from .fakes import FakeDatabase

#: README, "The hash chain": the version 2 worked example (test/unit/chainV2.test.ts checks the same vector).
README_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
README_CHANGE = outbox.NewChange(
    "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5",
    "@alice:example.org",
    None,
    "im.vector.setting.theme",
    '{"theme":"dark"}',
    1700000000000,
)
README_SALT = "da7df9120cee81be92f619e6703e506f"
README_COMMITMENT = "sha256:fd74ec66942baac169b813ae3088201415e3b9a67f623e533635f7ce3e4db951"
README_KEYED_DIGEST = "633f26b4c9632cc7989ae15573f7ca39f44480d7700096a8c3984ef40676eca0"
README_CANONICAL_V2 = (
    '["v2",1,"5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5",1700000000000,"change","@alice:example.org",null,'
    '"im.vector.setting.theme",16,"sha256:fd74ec66942baac169b813ae3088201415e3b9a67f623e533635f7ce3e4db951",'
    '"hmac-sha256:633f26b4c9632cc7989ae15573f7ca39f44480d7700096a8c3984ef40676eca0",'
    '"0000000000000000000000000000000000000000000000000000000000000000"]'
)
README_HASH_V2 = "2f7aad7b0e2cc42f82eb3e173a41669c28694b7af639cd3f63be7bb779b0cc61"


def test_the_readme_v2_example() -> None:
    assert chain.salt_for(README_KEY, README_CHANGE.change_id) == README_SALT
    assert chain.commitment(README_SALT, README_CHANGE.content) == README_COMMITMENT
    # Spelled out: SHA-256 of the salt's hex text followed by the content's JSON text.
    assert (
        "sha256:" + hashlib.sha256(b'da7df9120cee81be92f619e6703e506f{"theme":"dark"}').hexdigest()
        == README_COMMITMENT
    )
    assert (
        keyed_digest.keyed_digest_of_key(
            README_KEY, "@alice:example.org", None, "im.vector.setting.theme", '{"theme":"dark"}'
        )
        == README_KEYED_DIGEST
    )
    link = chain.LinkV2(
        seq=1,
        change_id=README_CHANGE.change_id,
        ts=1700000000000,
        kind="change",
        user_id="@alice:example.org",
        room_id=None,
        account_data_type="im.vector.setting.theme",
        content_size=16,
        commitment=README_COMMITMENT,
        keyed_digest=README_KEYED_DIGEST,
        prev_hash=chain.GENESIS,
    )
    assert chain.canonical_v2(link) == README_CANONICAL_V2
    assert chain.record_hash_v2(link) == README_HASH_V2


def test_the_readme_v2_example_is_what_the_writer_writes_and_sends() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    written = db.run("", outbox.insert_many_txn, README_KEY, [README_CHANGE]).result
    assert isinstance(written, list)
    (row,) = written
    assert row.seq == 1 and row.hash == README_HASH_V2 and row.chain_version == 2
    (fetched,) = outbox.with_salts(README_KEY, [_fetch_one(db)])
    wire = fetched.to_wire()
    assert {k: wire[k] for k in ("content_size", "commitment", "salt", "keyed_digest", "chain")} == {
        "content_size": 16,
        "commitment": README_COMMITMENT,
        "salt": README_SALT,
        "keyed_digest": README_KEYED_DIGEST,
        "chain": {"prev": chain.GENESIS, "hash": README_HASH_V2, "version": 2},
    }
    # Without its content (too large for the appservice), the row still carries what its link covers.
    bare = fetched.to_wire(without_content=True)
    assert bare["content"] is None
    assert (bare["content_size"], bare["commitment"], bare["salt"]) == (16, README_COMMITMENT, README_SALT)


def test_v2_sizes_are_utf8_bytes_non_ascii_is_escaped_and_recordless_fields_are_null() -> None:
    content = json.dumps({"name": "é☃"}, ensure_ascii=False)  # as a recovered row may hold it
    change = outbox.NewChange("c", "@z:example.org", "!r:example.org", "é☃<x>", content, 5, kind="recovered")
    sealed = records.seal(b"k", change)
    assert sealed.content_size == len(content) + 3  # é is 2 bytes in UTF-8, ☃ is 3
    link = chain.LinkV2(
        2, "c", 5, "recovered", "@z:example.org", "!r:example.org", "é☃<x>", 1, None, None, "3d"
    )
    assert chain.canonical_v2(link) == (
        '["v2",2,"c",5,"recovered","@z:example.org","!r:example.org","\\u00e9\\u2603<x>",1,null,null,"3d"]'
    )
    deactivation = records.seal(
        b"k",
        outbox.NewChange("d", "@z:example.org", None, "", '{"deactivated":true}', 5, kind="deactivation"),
    )
    assert (deactivation.content_size, deactivation.commitment, deactivation.salt) == (None, None, None)
    assert deactivation.keyed_digest is not None
    checkpoint = records.seal(b"k", outbox.NewChange("p", "", None, "", "{}", 5, kind="checkpoint"))
    assert (checkpoint.content_size, checkpoint.commitment, checkpoint.keyed_digest) == (None, None, None)


#: README, "The hash chain": the version 1 worked example (rows written before version 2 still verify by it).
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


def test_non_ascii_is_escaped_and_null_keyed_digests_stay_null() -> None:
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
    content = '{"n":2}'
    salt = chain.salt_for(b"key", "c2")
    assert second.hash == chain.record_hash_v2(
        chain.LinkV2(
            second.seq,
            "c2",
            2,
            "change",
            "@u:test.local",
            None,
            "m.t",
            len(content),
            chain.commitment(salt, content),
            keyed_digest.keyed_digest_of_key(b"key", "@u:test.local", None, "m.t", content),
            first.hash,
        )
    )


def test_rows_written_before_v2_go_out_as_v1_and_the_chain_continues_from_them() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    # A row as version 1 left it: keyed digest of the content alone, no chain_version, head in meta.
    old_keyed = keyed_digest.keyed_digest(b"key", '{"n":0}')
    old = chain.Link(1, "c0", 1, "change", "@u:test.local", None, "m.t", old_keyed, chain.GENESIS)
    old_hash = chain.record_hash(old)
    db.conn.execute(
        "INSERT INTO account_data_audit_outbox (seq, change_id, user_id, room_id, account_data_type, content,"
        " created_ts, kind, keyed_digest, prev_hash, hash) VALUES (1, 'c0', '@u:test.local', NULL, 'm.t',"
        " '{\"n\":0}', 1, 'change', ?, ?, ?)",
        (old_keyed, chain.GENESIS, old_hash),
    )
    db.conn.execute(
        "INSERT INTO account_data_audit_meta (name, value) VALUES (?, ?)", (chain.HEAD_NAME, old_hash)
    )
    db.conn.commit()
    _record(db, 1)
    fetched = db.run("", outbox.fetch_batch_txn, 10, 1 << 20).result
    assert isinstance(fetched, list)
    rows = outbox.with_salts(b"key", fetched)
    v1, v2 = (row.to_wire() for row in rows)
    assert v1["chain"] == {"prev": chain.GENESIS, "hash": old_hash}  # no "version": 1
    assert not {"content_size", "commitment", "salt"} & set(v1)
    assert v1["keyed_digest"] == old_keyed
    assert v2["chain"]["prev"] == old_hash and v2["chain"]["version"] == 2
    assert v2["seq"] == 2
