"""Crash recovery's details (issue #25's mutation testing): per-room rows, the gap notice's exact wire form,
and what each early return of the recovery transaction reports."""

import json
from typing import cast

from synapse_account_data_audit import claims
from synapse_account_data_audit.claims import AccountDataKey, key_hash
from synapse_account_data_audit.meta import set_meta_txn
from synapse_account_data_audit.recovery import (
    CLEAN_SHUTDOWN,
    StoredRow,
    plan_recovery,
    scan_rows_txn,
    scan_tag_positions_txn,
)

from .fakes import FakeDatabase, synapse_tag, synapse_write
from .test_recovery import ALICE, BOB, FENCE_1, FENCE_2, outbox, recover, setup_db

ROOM = "!r:test.local"
LATER = "changed_after_restart"


def test_a_rooms_account_data_is_scanned_with_its_room_and_position() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.global", "{}", 99)
    synapse_write(db, BOB, "m.fully_read", '{"event_id":"$e"}', 104, room=ROOM)
    synapse_write(db, ALICE, "m.k", "{}", 105)
    synapse_tag(db, BOB, ROOM, 106)
    rows = cast("list[StoredRow]", db.run("", scan_rows_txn, 100).result)
    assert [(r.stream_id, r.key.user_id, r.key.room_id, r.key.account_data_type) for r in rows] == [
        (105, ALICE, None, "m.k"),
        (104, BOB, ROOM, "m.fully_read"),
    ]
    assert db.run("", scan_tag_positions_txn, 100).result == [106]
    assert db.run("", scan_tag_positions_txn, 106).result == []


def test_an_unrecorded_room_change_is_recovered_with_its_room_after_a_gap_notice_in_wire_form() -> None:
    db = setup_db()
    synapse_write(db, BOB, "m.fully_read", '{"event_id":"$a"}', 102, room=ROOM)
    synapse_write(db, BOB, "m.fully_read", '{"event_id":"$b"}', 103, room=ROOM)  # 102 overwritten
    result = recover(db, FENCE_2)
    assert [(r.stream_id, r.key.room_id) for r in result.recovered] == [(103, ROOM)]
    assert [(g.key.room_id, g.unaccounted, g.recovered) for g in result.gap_keys] == [(ROOM, 2, True)]
    rows = outbox(db)
    assert [r[:5] for r in rows] == [
        ("gap", "", "", "{}", None),
        ("recovered", BOB, "m.fully_read", '{"event_id":"$b"}', 103),
    ]
    room_ids = [r[0] for r in db.conn.execute("SELECT room_id FROM account_data_audit_outbox ORDER BY seq")]
    assert room_ids == [None, ROOM]
    # The protocol's gap details: compact JSON, the window as stream positions, each key named in full.
    assert rows[0][5] == (
        '{"lost":2,"keys":[{"user_id":"@bob:test.local","room_id":"!r:test.local","type":"m.fully_read",'
        '"unaccounted":2,"latest":"recovered"}],"stream_positions":{"after":100,"through":110}}'
    )
    # 101 and 102 lie before the key's value; 104-110 after every key's value.
    assert (result.lost, result.unattributed, result.window) == (2, 7, (FENCE_1, FENCE_2))


def test_a_key_that_changed_again_after_the_restart_is_named_as_such_and_not_recovered() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.k", '{"v":1}', 104)
    synapse_write(db, ALICE, "m.k", '{"v":2}', 112)  # this run's own change, past the fence
    result = recover(db, FENCE_2)
    assert result.recovered == []
    details = json.loads(outbox(db)[0][5] or "")
    assert details["keys"] == [
        {
            "user_id": ALICE,
            "room_id": None,
            "type": "m.k",
            "unaccounted": 10,
            "latest": "changed_after_restart",
        }
    ]


def test_nothing_new_after_a_clean_shutdown_skips_the_scan_and_says_through_where() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.k", "{}", 104)  # unrecorded, but the marker vouches for everything to 110
    db.run("", set_meta_txn, CLEAN_SHUTDOWN, str(FENCE_2))
    result = recover(db, FENCE_2)
    assert (result.window, result.recovered, result.gap_keys, result.clean_through) == (None, [], [], FENCE_2)
    assert (result.first_start, result.lost, result.unattributed) == (None, 0, 0)
    assert outbox(db) == []
    assert db.run("", claims.get_state_txn, claims.STATE_RECOVERED_THROUGH).result == FENCE_2


def test_a_marker_older_than_the_fence_does_not_skip_the_scan() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.k", "{}", 108)
    db.run("", set_meta_txn, CLEAN_SHUTDOWN, "105")
    result = recover(db, FENCE_2)
    assert result.clean_through is None
    assert [(r.stream_id, r.key.account_data_type) for r in result.recovered] == [(108, "m.k")]


def test_a_fence_at_or_below_the_last_window_does_nothing() -> None:
    db = setup_db()
    synapse_write(db, ALICE, "m.k", "{}", 99)
    for fence in (FENCE_1, FENCE_1 - 5):
        result = recover(db, fence)
        assert (result.window, result.recovered, result.gap_keys, result.first_start) == (None, [], [], None)
        assert (result.lost, result.unattributed) == (0, 0)
    assert db.run("", claims.get_state_txn, claims.STATE_RECOVERED_THROUGH).result == FENCE_1
    # A clean-shutdown marker does not make it look at anything either.
    db.run("", set_meta_txn, CLEAN_SHUTDOWN, str(FENCE_1))
    result = recover(db, FENCE_1)
    assert (result.window, result.clean_through) == (None, None)


def test_the_first_start_says_where_the_trail_starts() -> None:
    db = FakeDatabase()
    from synapse_account_data_audit.store import create_tables_txn

    db.run("", create_tables_txn)
    result = recover(db, 42)
    assert (result.first_start, result.window, result.recovered, result.gap_keys) == (42, None, [], [])
    assert (result.lost, result.unattributed, result.clean_through) == (0, 0, None)


def test_a_keys_gap_is_counted_from_its_latest_recorded_change_not_an_earlier_one() -> None:
    k = AccountDataKey(ALICE, None, "m.k")
    # K recorded at 12 and 14; 11, 13 and 15 unaccounted; K's current row at 16 is unrecorded.
    plan = plan_recovery([StoredRow(16, k)], [], {12: key_hash(k), 14: key_hash(k)}, 10, 16)
    assert [(g.key, g.unaccounted, g.recovered) for g in plan.gap_keys] == [(k, 1, True)]
    assert (plan.lost, plan.unattributed) == (1, 2)
