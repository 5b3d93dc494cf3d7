import json
import random
from typing import Any
from unittest.mock import AsyncMock, Mock

import pytest
from synapse.api.errors import HttpResponseException
from twisted.internet import defer

from synapse_account_data_audit import AccountDataAuditModule
from synapse_account_data_audit.config import AuditModuleConfig
from synapse_account_data_audit.delivery import Deliverer, backoff_delay
from synapse_account_data_audit.store import AuditStore

from .fakes import FakeDatabase, make_api

CONFIG = AuditModuleConfig(appservice_url="http://as.test", token="tok", batch_size=2, batches_in_flight=2)


def build(config: AuditModuleConfig = CONFIG) -> tuple[FakeDatabase, Mock, AccountDataAuditModule]:
    db = FakeDatabase()
    api = make_api(db)
    module = AccountDataAuditModule(config, api, Mock())
    return db, api, module


def change(module: AccountDataAuditModule, n: int, room: str | None = None) -> "defer.Deferred[None]":
    return defer.ensureDeferred(module.on_account_data_updated(f"@u{n}:test.local", room, "m.t", {"n": n}))


def posted_seqs(api: Mock) -> list[list[int]]:
    return [[c["seq"] for c in call.args[1]["changes"]] for call in api.appservice.call_args_list]


def _held_posts(api: Mock) -> list[defer.Deferred[Any]]:
    """Makes each POST wait until the test answers it; returns the open answers, oldest first."""
    pending: list[defer.Deferred[Any]] = []

    def post(_url: str, _body: Any, headers: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        pending.append(d)
        return d

    api.appservice = Mock(side_effect=post)
    return pending


def test_registers_callback_poll_and_startup_kick_on_the_delivery_instance() -> None:
    _db, api, module = build()
    api.register_account_data_callbacks.assert_called_once_with(
        on_account_data_updated=module.on_account_data_updated
    )
    assert api.looping_background_call.call_args.kwargs["run_on_all_instances"] is True
    assert [c.kwargs["desc"] for c in api.delayed_background_call.call_args_list] == [
        "account_data_audit_poll_tables_start",  # room tags and push rules (see poller)
        "account_data_audit_start",
    ]


def test_other_instances_record_but_do_not_deliver() -> None:
    db = FakeDatabase()
    api = make_api(db, worker_name="worker1")
    module = AccountDataAuditModule(CONFIG, api, Mock())
    # Only the outbox's health is read on every instance (see health_stats).
    assert [c.kwargs["desc"] for c in api.looping_background_call.call_args_list] == [
        "account_data_audit_health"
    ]
    assert change(module, 1).called
    api.appservice.assert_not_called()
    assert len(db.rows()) == 1


def test_each_change_wakes_delivery_and_is_deleted_once_acknowledged() -> None:
    db, api, module = build()
    d = change(module, 1, room="!r:test.local")
    assert d.called
    assert posted_seqs(api) == [[1]]
    url, body = api.appservice.call_args.args
    assert url == "http://as.test/_account_data_audit/v1/changes"
    headers = api.appservice.call_args.kwargs["headers"]
    assert headers[b"Authorization"] == [b"Bearer tok"]
    assert headers[b"Content-Type"] == [b"application/json"]
    assert body["changes"][0]["room_id"] == "!r:test.local"
    assert json.loads(body["changes"][0]["content"]) == {"n": 1}
    assert db.rows() == []
    api.sleep.assert_not_called()


def test_callback_never_awaits_the_network() -> None:
    db, api, module = build()
    never: defer.Deferred[Any] = defer.Deferred()
    api.appservice = Mock(return_value=never)
    first = change(module, 1)
    second = change(module, 2)
    # Delivery is stuck on the network, yet both callbacks have finished and both rows are stored.
    assert first.called and second.called
    assert len(db.rows()) == 2
    # The second went out at once, behind the first (see ``window``), and waits for its answer too.
    assert api.appservice.call_count == 2


def test_changes_during_delivery_go_out_at_once_in_order_up_to_the_window() -> None:
    db, api, module = build()
    pending = _held_posts(api)
    for n in range(1, 6):
        change(module, n)
    # Each went out as it came, none waiting for an answer, up to two batches' worth of rows (2 x 2).
    assert posted_seqs(api) == [[1], [2], [3], [4]]
    pending.pop(0).callback({})
    assert posted_seqs(api)[-1] == [5]
    while len(pending) > 0:
        pending.pop(0).callback({})
    assert db.rows() == []


def test_with_several_requests_open_changes_gather_into_one_batch() -> None:
    db, api, module = build(AuditModuleConfig(appservice_url="http://as.test", token="tok", batch_size=100))
    pending = _held_posts(api)
    gathering: list[defer.Deferred[None]] = []

    def gather(_seconds: float) -> defer.Deferred[None]:
        gathering.append(defer.Deferred())
        return gathering[-1]

    api.sleep = Mock(side_effect=gather)
    for n in range(1, 11):
        change(module, n)
    # Four requests open: the loop lets the next changes gather (briefly) instead of one request each.
    assert posted_seqs(api) == [[1], [2], [3], [4]]
    assert [call.args[0] for call in api.sleep.call_args_list] == [pytest.approx(0.08)]
    api.sleep = AsyncMock()
    gathering[0].callback(None)
    assert posted_seqs(api)[-1] == [5, 6, 7, 8, 9, 10]
    while len(pending) > 0:
        pending.pop(0).callback({})
    assert db.rows() == []


def test_failures_back_off_and_retry_the_same_batch() -> None:
    db, api, module = build()
    error = HttpResponseException(503, "Service Unavailable", b'{"errcode":"M_UNKNOWN"}')
    api.appservice.side_effect = [ConnectionError("refused"), error, {}]
    change(module, 1)
    assert posted_seqs(api) == [[1], [1], [1]]
    delays = [call.args[0] for call in api.sleep.call_args_list]
    assert len(delays) == 2
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0
    assert db.rows() == []


def test_partial_progress_is_deleted_and_the_rest_retried() -> None:
    db = FakeDatabase()
    recorder = AccountDataAuditModule(
        CONFIG, make_api(db, worker_name="other"), Mock()
    )  # records, never delivers
    change(recorder, 1)
    change(recorder, 2)
    first_seq = db.rows()[0][0]

    api = make_api(db)
    body = json.dumps({"errcode": "M_UNKNOWN", "processed_through": first_seq}).encode()
    api.appservice.side_effect = [HttpResponseException(503, "x", body), {}]
    Deliverer(api, CONFIG, AuditStore(api)).kick()
    assert posted_seqs(api) == [[1, 2], [2]]
    assert db.rows() == []
    assert api.sleep.call_count == 1


def test_backoff_is_capped_with_jitter() -> None:
    rand = random.Random(1)
    delays = [backoff_delay(n, 0.5, 60, rand) for n in range(100)]
    assert all(0 < d <= 60 for d in delays)
    assert min(delays[20:]) >= 30  # capped delay, at least half of it
    assert delays[0] <= 0.5


def test_content_is_not_mutated() -> None:
    _db, _api, module = build()
    content = {"a": [1, 2], "b": {"c": 1.5}}
    snapshot = json.dumps(content)
    defer.ensureDeferred(module.on_account_data_updated("@u:test.local", None, "m.t", content))
    assert json.dumps(content) == snapshot


def test_database_failure_never_reaches_the_user_and_the_change_is_written_once_it_is_back() -> None:
    db, api, module = build()
    db.fail_next = 1
    backoff: defer.Deferred[None] = defer.Deferred()
    api.sleep = Mock(return_value=backoff)
    assert change(module, 1).called
    api.appservice.assert_not_called()
    backoff.callback(None)  # the writer's retry
    assert posted_seqs(api) == [[1]]


def test_too_large_batches_are_split() -> None:
    config = AuditModuleConfig(appservice_url="http://as.test", token="tok", batch_size=4)
    db = FakeDatabase()
    recorder = AccountDataAuditModule(config, make_api(db, worker_name="other"), Mock())
    for n in range(1, 5):
        change(recorder, n)
    api = make_api(db)
    too_large = HttpResponseException(413, "Too Large", b'{"errcode":"M_TOO_LARGE"}')
    api.appservice.side_effect = [too_large, too_large, {}, {}]
    Deliverer(api, config, AuditStore(api)).kick()
    assert posted_seqs(api) == [[1, 2, 3, 4], [1, 2], [1], [2, 3, 4]]
    assert db.rows() == []
    api.sleep.assert_not_called()


def test_a_change_too_large_for_any_request_goes_without_its_content() -> None:
    db = _recorded(CONFIG, 2)
    api = make_api(db)
    too_large = HttpResponseException(413, "Too Large", b'{"errcode":"M_TOO_LARGE"}')
    api.appservice.side_effect = [too_large, too_large, {}, {}]
    Deliverer(api, CONFIG, AuditStore(api)).kick()
    bodies = [call.args[1]["changes"] for call in api.appservice.call_args_list]
    # [1, 2] halves to [1]; [1] alone is still refused: it goes without content, then the rest as usual.
    assert [[c["seq"] for c in b] for b in bodies] == [[1, 2], [1], [1], [2]]
    assert bodies[2][0]["content"] is None
    assert bodies[2][0]["content_omitted"] == {"size": len('{"n":1}'), "reason": "too_large"}
    assert bodies[2][0]["keyed_digest"] == bodies[1][0]["keyed_digest"]
    assert bodies[3][0]["content"] == '{"n":2}'
    assert db.rows() == []
    api.sleep.assert_not_called()


def _recorded(config: AuditModuleConfig, count: int) -> FakeDatabase:
    db = FakeDatabase()
    recorder = AccountDataAuditModule(config, make_api(db, worker_name="other"), Mock())
    for n in range(1, count + 1):
        change(recorder, n)
    return db


def test_the_next_batch_is_sent_before_the_first_is_answered_and_deleted_in_order() -> None:
    db = _recorded(CONFIG, 6)
    api = make_api(db)
    pending = _held_posts(api)
    config = AuditModuleConfig(
        appservice_url="http://as.test", token="tok", batch_size=2, batches_in_flight=2
    )
    Deliverer(api, config, AuditStore(api)).kick()
    assert posted_seqs(api) == [[1, 2], [3, 4]]  # two batches' worth in flight
    pending[0].callback({})
    assert posted_seqs(api) == [[1, 2], [3, 4], [5, 6]]
    assert [r[0] for r in db.rows()] == [3, 4, 5, 6]
    pending[1].callback({})
    pending[2].callback({})
    assert db.rows() == []
    # Each request names the unanswered one before it, so the appservice can restore the order.
    follows = [call.args[1].get("follows") for call in api.appservice.call_args_list]
    assert follows == [None, 2, 4]


def test_one_batch_in_flight_waits_for_each_answer() -> None:
    config = AuditModuleConfig(
        appservice_url="http://as.test", token="tok", batch_size=2, batches_in_flight=1
    )
    db = _recorded(config, 4)
    api = make_api(db)
    pending = _held_posts(api)
    Deliverer(api, config, AuditStore(api)).kick()
    assert posted_seqs(api) == [[1, 2]]
    pending[0].callback({})
    assert posted_seqs(api) == [[1, 2], [3, 4]]


def test_a_failed_batch_waits_for_those_behind_it_then_is_retried_first() -> None:
    db = _recorded(CONFIG, 4)
    api = make_api(db)
    pending = _held_posts(api)
    Deliverer(api, CONFIG, AuditStore(api)).kick()
    assert posted_seqs(api) == [[1, 2], [3, 4]]
    refused = b'{"errcode":"M_UNKNOWN","processed_through":null}'
    pending[0].errback(HttpResponseException(503, "Service Unavailable", refused))
    assert posted_seqs(api) == [[1, 2], [3, 4]]  # no retry while a later batch is still open
    api.sleep.assert_not_called()
    pending[1].errback(HttpResponseException(503, "Service Unavailable", refused))
    assert api.sleep.call_count == 1
    assert posted_seqs(api) == [[1, 2], [3, 4], [1, 2]]
    pending[2].callback({})
    assert posted_seqs(api) == [[1, 2], [3, 4], [1, 2], [3, 4]]
    pending[3].callback({})
    assert db.rows() == []
    follows = [call.args[1].get("follows") for call in api.appservice.call_args_list]
    assert follows == [None, 2, None, None]  # a retry, and the window after it, start afresh


def test_a_later_batch_answered_ok_behind_a_failed_one_is_kept_and_resent_after_it() -> None:
    db = _recorded(CONFIG, 4)
    api = make_api(db)
    pending = _held_posts(api)
    Deliverer(api, CONFIG, AuditStore(api)).kick()
    assert posted_seqs(api) == [[1, 2], [3, 4]]
    pending[0].errback(ConnectionError("reset"))  # batch 1 fails fast
    pending[1].callback({})  # batch 2 (follows 1) answers OK, e.g. a restarted appservice took it
    # Batch 2's rows stay until batch 1 is acknowledged: the outbox never loses a row after an unsent one.
    assert [r[0] for r in db.rows()] == [1, 2, 3, 4]
    assert posted_seqs(api) == [[1, 2], [3, 4], [1, 2]]
    pending[2].callback({})
    assert [r[0] for r in db.rows()] == [3, 4]
    # ...then batch 2 again (the appservice skips what it already posted, by change and transaction ID).
    assert posted_seqs(api) == [[1, 2], [3, 4], [1, 2], [3, 4]]
    pending[3].callback({})
    assert db.rows() == []


def test_the_appservices_posted_head_is_stored_with_the_acknowledgement_and_sent_back() -> None:
    db, api, module = build()
    head = {"seq": 1, "hash": "ab" * 32}
    api.appservice.return_value = {"acknowledged_through": 1, "posted_head": head}
    change(module, 1)
    first_body = api.appservice.call_args_list[0].args[1]
    assert first_body["posted_head"] is None  # nothing acknowledged before
    change(module, 2)
    second_body = api.appservice.call_args_list[1].args[1]
    assert second_body["posted_head"] == head
    # ...and the last row it acknowledged, so the appservice can tell that the next one links to it.
    first_change = first_body["changes"][0]
    assert second_body["acked_head"] == {"seq": first_change["seq"], "hash": first_change["chain"]["hash"]}
    assert second_body["changes"][0]["chain"]["prev"] == first_change["chain"]["hash"]
    stored = db.conn.execute(
        "SELECT value FROM account_data_audit_meta WHERE name = 'posted_head'"
    ).fetchone()
    assert json.loads(stored[0]) == head
