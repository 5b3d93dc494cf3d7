import json
from typing import Any
from unittest.mock import Mock

from synapse.api.errors import HttpResponseException
from twisted.internet import defer

from synapse_account_data_audit.sinks import sinks_through

from .test_delivery import build, change


def _appservice(state: dict[str, Any]) -> Any:
    """An appservice whose export takes everything and whose room refuses until ``state["room_ok"]``."""

    def answer(_url: str, body: Any, headers: Any) -> Any:
        seqs = [c["seq"] for c in body["changes"]]
        state["posts"].append(("file" if body.get("sinks_only") else "room", seqs))
        state["file"] = max(state["file"], seqs[-1])
        sinks = {"jsonl": state["file"]} if state["exports"] else None
        if body.get("sinks_only"):
            return {"sinks": sinks}
        if not state["room_ok"]:
            refusal = {
                "errcode": "M_UNKNOWN",
                "processed_through": None,
                **({"sinks": sinks} if sinks else {}),
            }
            raise HttpResponseException(503, "Service Unavailable", json.dumps(refusal).encode())
        return {"acknowledged_through": seqs[-1], **({"sinks": sinks} if sinks else {})}

    return answer


def _held_sleeps(api: Mock) -> list[defer.Deferred[None]]:
    """Makes each backoff sleep wait until the test ends it (the loop is suspended, as in Synapse)."""
    timers: list[defer.Deferred[None]] = []

    def sleep(_seconds: float) -> defer.Deferred[None]:
        timers.append(defer.Deferred())
        return timers[-1]

    api.sleep = Mock(side_effect=sleep)
    return timers


def test_the_export_keeps_up_while_the_room_refuses_and_rows_stay_until_the_room_has_them() -> None:
    db, api, module = build()
    state: dict[str, Any] = {"room_ok": False, "file": 0, "posts": [], "exports": True}
    api.appservice.side_effect = _appservice(state)
    timers = _held_sleeps(api)
    change(module, 1)
    for n in (2, 3, 4):
        change(module, n)  # the room still refuses: each goes to the file at once, sinks_only
    assert state["posts"] == [("room", [1]), ("file", [2]), ("file", [3]), ("file", [4])]
    assert len(db.rows()) == 4  # nothing left the outbox while only the file had it
    # Feeding the file decides no digest group: the room's own fetch does (else they would go one by one).
    groups = db.conn.execute(
        "SELECT seq, digest_group FROM account_data_audit_outbox WHERE seq > 1"
    ).fetchall()
    assert groups == [(2, None), (3, None), (4, None)]
    state["room_ok"] = True
    timers[0].callback(None)  # the room's retry, after its backoff, from its own position
    assert state["posts"][4:] == [("room", [1]), ("room", [2, 3]), ("room", [4])]
    assert db.rows() == []
    change(module, 5)  # the room takes records again: no more sinks_only batches
    assert state["posts"][7:] == [("room", [5])]


def test_an_appservice_without_an_export_is_the_room_alone() -> None:
    db, api, module = build()
    state: dict[str, Any] = {"room_ok": False, "file": 0, "posts": [], "exports": False}
    api.appservice.side_effect = _appservice(state)
    timers = _held_sleeps(api)
    change(module, 1)
    change(module, 2)
    assert state["posts"] == [("room", [1])]
    state["room_ok"] = True
    timers[0].callback(None)
    assert state["posts"] == [("room", [1]), ("room", [1]), ("room", [2])]
    assert db.rows() == []


def test_the_export_runs_ahead_of_a_slow_room_through_a_backlog() -> None:
    db, api, module = build()
    posts: list[tuple[str, list[int]]] = []
    room: list[tuple[list[int], defer.Deferred[Any]]] = []

    def answer(_url: str, body: Any, headers: Any) -> Any:
        seqs = [c["seq"] for c in body["changes"]]
        if body.get("sinks_only"):
            posts.append(("file", seqs))
            return defer.succeed({"sinks": {"jsonl": seqs[-1]}})
        posts.append(("room", seqs))
        room.append((seqs, defer.Deferred()))
        return room[-1][1]

    api.appservice = Mock(side_effect=answer)
    for n in range(1, 10):
        change(module, n)
    # Each goes out as it comes, up to the window of two batches' worth of rows (2 x 2).
    assert posts == [("room", [1]), ("room", [2]), ("room", [3]), ("room", [4])]

    def ack_oldest() -> None:
        seqs, d = room.pop(0)
        d.callback({"acknowledged_through": seqs[-1], "sinks": {"jsonl": seqs[-1]}})

    ack_oldest()  # a backlog behind a full pipeline: the export is fed past it, up to the last row
    assert ("file", [8, 9]) in posts
    assert ("room", [8, 9]) not in posts
    assert len(db.rows()) == 8  # still only the room's acknowledgement deletes
    while room:
        ack_oldest()
    assert db.rows() == []
    posts.clear()
    change(module, 10)
    room.pop(0)[1].callback({"acknowledged_through": 10, "sinks": {"jsonl": 10}})
    assert posts == [("room", [10])]  # drained: no more sinks_only batches


def test_sinks_through_reads_only_a_well_formed_answer() -> None:
    assert sinks_through({"sinks": {"jsonl": 7}}) == 7
    assert sinks_through({"sinks": {"jsonl": True}}) is None
    assert sinks_through({"sinks": None}) is None
    assert sinks_through({}) is None
    assert sinks_through([]) is None
