"""Polling Synapse's tables for room tags and push rules (``poller``, ``tags``, ``push_rules``)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from itertools import count
from typing import Any, cast
from unittest.mock import Mock

import pytest
from twisted.internet import defer

from synapse_account_data_audit.outbox import fetch_batch_txn
from synapse_account_data_audit.poller import PUSH_RULES, TAGS, Poller, StreamSource, poll_txn
from synapse_account_data_audit.pollstate import WINDOW, PollState, load_state_txn
from synapse_account_data_audit.records import OutboxRow
from synapse_account_data_audit.store import AuditStore

from .fakes import FakeDatabase, make_api

ALICE = "@alice:test.local"
BOB = "@bob:test.local"
ROOM = "!room:test.local"
_ids = count(1)


def new_id() -> str:
    return f"c{next(_ids)}"


def push(db: FakeDatabase, stream_id: int, op: str, rule: str, user: str = ALICE, **data: Any) -> None:
    db.conn.execute(
        "INSERT INTO push_rules_stream (stream_id, event_stream_ordering, user_id, rule_id, op, conditions,"
        " actions) VALUES (?, 0, ?, ?, ?, ?, ?)",
        (stream_id, user, rule, op, data.get("conditions"), data.get("actions")),
    )
    db.conn.commit()


def tag(db: FakeDatabase, stream_id: int, tags: dict[str, str], user: str = ALICE, room: str = ROOM) -> None:
    """What Synapse does on a tag change: the room's tags rewritten, its revision moved."""
    db.conn.execute("DELETE FROM room_tags WHERE user_id = ? AND room_id = ?", (user, room))
    for name, content in tags.items():
        db.conn.execute("INSERT INTO room_tags VALUES (?, ?, ?, ?)", (user, room, name, content))
    db.conn.execute(
        "INSERT INTO room_tags_revisions (user_id, room_id, stream_id) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, room_id) DO UPDATE SET stream_id = ?",
        (user, room, stream_id, stream_id),
    )
    db.conn.commit()


def setup(db: FakeDatabase) -> None:
    api = make_api(db)
    defer.ensureDeferred(AuditStore(api).ensure_tables())
    for source in (TAGS, PUSH_RULES):
        db.run("setup", lambda txn, s=source: s.create_tables_txn(txn))


def poll(db: FakeDatabase, source: StreamSource, start: int | None = 0, upto: int | None = None) -> int:
    d = db.run("poll", poll_txn, source, start, upto, 500, 1_700_000_000_000, new_id)
    written: list[tuple[int, bool]] = []
    d.addCallback(written.append)
    return written[0][0]


def outbox(db: FakeDatabase) -> list[OutboxRow]:
    rows: list[OutboxRow] = []
    db.run("fetch", fetch_batch_txn, 1000, 1 << 30).addCallback(rows.extend)
    return rows


def contents(db: FakeDatabase) -> list[Any]:
    return [json.loads(row.content) for row in outbox(db)]


@pytest.fixture
def db() -> FakeDatabase:
    database = FakeDatabase()
    setup(database)
    return database


def test_every_push_rule_change_is_one_record_in_stream_order(db: FakeDatabase) -> None:
    cond = json.dumps([{"kind": "event_match", "key": "content.body", "pattern": "cake*"}])
    push(db, 1, "ADD", "global/content/cake", conditions=cond, actions='["notify"]')
    push(db, 2, "DISABLE", "global/content/cake")
    push(db, 3, "ENABLE", "global/content/cake")
    push(db, 4, "ACTIONS", "global/content/cake", actions='["dont_notify"]')
    push(db, 5, "DELETE", "global/content/cake")
    push(db, 6, "ADD", "global/room/!a/b:test.local", user=BOB, conditions="[]", actions='["notify"]')
    assert poll(db, PUSH_RULES) == 6
    rows = outbox(db)
    assert {(r.account_data_type, r.room_id, r.source) for r in rows} == {
        ("m.push_rules", None, "push_rules")
    }
    base = {"scope": "global", "kind": "content", "rule_id": "cake"}
    assert contents(db) == [
        {**base, "change": "added", "rule": {"pattern": "cake*", "actions": ["notify"]}},
        {**base, "change": "disabled", "rule": {"enabled": False}},
        {**base, "change": "enabled", "rule": {"enabled": True}},
        {**base, "change": "actions", "rule": {"actions": ["dont_notify"]}},
        {**base, "change": "removed"},
        # A room rule's ID is the room's, slashes and all; the room names it, so no conditions.
        {"scope": "global", "kind": "room", "rule_id": "!a/b:test.local", "change": "added",
         "rule": {"actions": ["notify"]}},
    ]  # fmt: skip
    assert [r.user_id for r in rows] == [ALICE] * 5 + [BOB]
    # A record like any other: kind change, chained; the wire says where it came from.
    assert rows[1].prev_hash == rows[0].hash and rows[0].kind == "change"
    wire = replace(rows[0], salt="00" * 16).to_wire()
    assert wire["source"] == "push_rules" and wire["type"] == "m.push_rules"
    assert poll(db, PUSH_RULES) == 0  # nothing twice


def test_first_start_audits_from_the_position_at_load(db: FakeDatabase) -> None:
    push(db, 7, "ADD", "global/override/old", conditions="[]", actions="[]")
    push(db, 9, "ADD", "global/override/new", conditions="[]", actions="[]")
    assert poll(db, PUSH_RULES, start=8) == 1
    assert contents(db)[0]["rule_id"] == "new"
    push(db, 10, "DELETE", "global/override/old")
    assert poll(db, PUSH_RULES, start=8) == 1  # the history below the start stays out on later polls too
    assert [c["rule_id"] for c in contents(db)] == ["new", "old"]


def test_a_row_committed_late_behind_the_position_is_recorded_once(db: FakeDatabase) -> None:
    push(db, 1, "ADD", "global/override/a", conditions="[]", actions="[]")
    push(db, 3, "ADD", "global/override/c", conditions="[]", actions="[]")
    assert poll(db, PUSH_RULES) == 2
    # Stream ID 2 was allocated before 3 but committed after the poll read 3.
    push(db, 2, "ADD", "global/override/b", conditions="[]", actions="[]")
    assert poll(db, PUSH_RULES) == 1
    assert poll(db, PUSH_RULES) == 0
    assert [c["rule_id"] for c in contents(db)] == ["a", "c", "b"]
    state = cast(PollState, db.run("state", load_state_txn, PUSH_RULES.state_name).result)
    assert state.through == 3 and state.recent == {1, 2, 3}


def test_the_upper_bound_leaves_uncommitted_positions_for_the_next_poll(db: FakeDatabase) -> None:
    push(db, 1, "ADD", "global/override/a", conditions="[]", actions="[]")
    push(db, 2, "ADD", "global/override/b", conditions="[]", actions="[]")
    assert poll(db, PUSH_RULES, upto=1) == 1
    assert poll(db, PUSH_RULES, upto=2) == 1
    assert [c["rule_id"] for c in contents(db)] == ["a", "b"]


def test_more_rows_than_a_batch_and_the_window_all_arrive_once(db: FakeDatabase) -> None:
    for i in range(1, 2 * WINDOW + 600):
        push(db, i, "ADD", f"global/override/r{i}", conditions="[]", actions="[]")
    more = True
    while more:
        result = cast(tuple[int, bool], db.run("poll", poll_txn, PUSH_RULES, 0, None, 500, 0, new_id).result)
        more = result[1]
    assert [c["rule_id"] for c in contents(db)] == [f"r{i}" for i in range(1, 2 * WINDOW + 600)]


def test_a_failed_poll_records_nothing_and_moves_nothing(db: FakeDatabase) -> None:
    push(db, 1, "ADD", "global/override/a", conditions="[]", actions="[]")

    def failing_id() -> str:
        raise RuntimeError("crash in the middle of the transaction")

    d = db.run("poll", poll_txn, PUSH_RULES, 0, None, 500, 0, failing_id)
    d.addErrback(lambda _f: None)
    assert outbox(db) == []
    assert poll(db, PUSH_RULES) == 1
    assert poll(db, PUSH_RULES) == 0


def test_tags_record_the_rooms_tags_as_sync_shows_them(db: FakeDatabase) -> None:
    tag(db, 1, {"m.favourite": '{"order":0.25}'})
    assert poll(db, TAGS) == 1
    tag(db, 2, {"m.favourite": '{"order":0.5}', "u.work": "{}"})
    assert poll(db, TAGS) == 1
    tag(db, 3, {"u.work": "{}"})
    tag(db, 4, {}, user=BOB)
    assert poll(db, TAGS) == 2
    tag(db, 5, {})
    assert poll(db, TAGS) == 1
    rows = outbox(db)
    assert {(r.account_data_type, r.room_id, r.source) for r in rows} == {("m.tag", ROOM, "tags")}
    assert [r.content for r in rows] == [
        '{"tags":{"m.favourite":{"order":0.25}}}',
        '{"tags":{"m.favourite":{"order":0.5},"u.work":{}}}',
        '{"tags":{"u.work":{}}}',
        # Bob's room had no copy yet: its first revision is recorded (empty tags).
        '{"tags":{}}',
        '{"tags":{}}',
    ]
    assert [r.user_id for r in rows] == [ALICE, ALICE, ALICE, BOB, ALICE]


def test_tag_changes_between_polls_collapse_and_no_change_records_nothing(db: FakeDatabase) -> None:
    tag(db, 1, {"m.lowpriority": "{}"})
    tag(db, 2, {"m.lowpriority": "{}", "u.x": "{}"})
    assert poll(db, TAGS) == 1
    assert contents(db) == [{"tags": {"m.lowpriority": {}, "u.x": {}}}]
    tag(db, 3, {"m.lowpriority": "{}", "u.x": "{}"})  # set to what it was
    assert poll(db, TAGS) == 0
    tag(db, 4, {"m.lowpriority": "{}"})
    assert poll(db, TAGS) == 1


class Positions:
    def __init__(self) -> None:
        self.value: int | None = 0

    def __call__(self, _api: Any) -> int | None:
        return self.value


def test_an_idle_poll_queries_nothing_and_a_moved_stream_is_polled() -> None:
    db = FakeDatabase()
    api = make_api(db)
    position = Positions()
    source = replace(PUSH_RULES, position=position)
    kicked = Mock()
    poller = Poller(api, AuditStore(api), [source], kicked, new_id)
    defer.ensureDeferred(poller.poll())
    queries = len(db.descs)
    defer.ensureDeferred(poller.poll())
    assert len(db.descs) == queries  # the stream did not move: no query
    push(db, 1, "ADD", "global/override/a", conditions="[]", actions="[]")
    position.value = 1
    defer.ensureDeferred(poller.poll())
    assert len(outbox(db)) == 1
    kicked.assert_called_once()
    position.value = None  # unknown: every poll queries
    before = len(db.descs)
    defer.ensureDeferred(poller.poll())
    assert len(db.descs) == before + 1


def test_a_failed_poll_is_retried_even_if_the_stream_did_not_move_again() -> None:
    db = FakeDatabase()
    api = make_api(db)
    position = Positions()
    poller = Poller(api, AuditStore(api), [replace(PUSH_RULES, position=position)], Mock(), new_id)
    defer.ensureDeferred(poller.poll())
    push(db, 1, "ADD", "global/override/a", conditions="[]", actions="[]")
    position.value = 1
    db.fail_next = 1
    defer.ensureDeferred(poller.poll())
    assert outbox(db) == []
    defer.ensureDeferred(poller.poll())
    assert len(outbox(db)) == 1


def test_missing_tables_turn_that_source_off_naming_the_synapse_version(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = FakeDatabase()
    db.conn.execute("DROP TABLE room_tags")
    api = make_api(db)
    poller = Poller(api, AuditStore(api), [TAGS, PUSH_RULES], Mock(), new_id)
    with caplog.at_level(logging.ERROR):
        defer.ensureDeferred(poller.poll())
    assert [s.name for s in poller.sources] == ["push_rules"]
    assert "no table room_tags" in caplog.text and "room tags (m.tag)" in caplog.text
    assert "Synapse 1." in caplog.text
