"""Checkpoints: a chained record when nothing was written for checkpoint_interval_seconds, written by the
delivery instance through the outbox's one insert path, and delivered like any record."""

from collections.abc import Callable, Coroutine
from typing import Any
from unittest.mock import Mock

from twisted.internet import defer

from synapse_account_data_audit import AccountDataAuditModule, chain
from synapse_account_data_audit.checkpoints import check_period_seconds
from synapse_account_data_audit.config import AuditModuleConfig

from .fakes import FakeDatabase, make_api

CONFIG = AuditModuleConfig(appservice_url="http://as.test", token="tok", checkpoint_interval_seconds=2)
START = 1_700_000_000_000


def build(worker: str | None = None) -> tuple[FakeDatabase, Mock, AccountDataAuditModule]:
    db = FakeDatabase()
    api = make_api(db, worker_name=worker)
    api.get_current_time_msec.return_value = START
    return db, api, AccountDataAuditModule(CONFIG, api, Mock())


def checker(api: Mock) -> Callable[[], Coroutine[Any, Any, None]]:
    (call,) = [
        c for c in api.looping_background_call.call_args_list if c.kwargs["desc"].endswith("checkpoint")
    ]
    assert call.kwargs["run_on_all_instances"] is True  # the delivery instance may be a worker
    assert call.args[1] == check_period_seconds(2) * 1000 == 1000
    check: Callable[[], Coroutine[Any, Any, None]] = call.args[0]
    return check


def check_at(api: Mock, now_ms: int) -> None:
    api.get_current_time_msec.return_value = now_ms
    assert defer.ensureDeferred(checker(api)()).called


def posted(api: Mock) -> list[dict[str, Any]]:
    return [item for call in api.appservice.call_args_list for item in call.args[1]["changes"]]


def test_the_check_period_is_half_the_interval_at_most_a_minute() -> None:
    assert check_period_seconds(2) == 1
    assert check_period_seconds(3600) == 60


def test_only_the_delivery_instance_checks() -> None:
    _db, api, _module = build(worker="worker1")
    # Only the outbox's health is read on every instance (see health_stats).
    assert [c.kwargs["desc"] for c in api.looping_background_call.call_args_list] == [
        "account_data_audit_health"
    ]


def test_an_idle_trail_gets_a_chained_checkpoint_each_interval() -> None:
    db, api, _module = build()
    check_at(api, START)  # nothing written yet: idle time counts from here
    check_at(api, START + 1999)
    assert posted(api) == []
    check_at(api, START + 2000)
    (checkpoint,) = posted(api)
    assert checkpoint == {
        "id": checkpoint["id"],
        "seq": 1,
        "ts": START + 2000,
        "kind": "checkpoint",
        "chain": {"prev": chain.GENESIS, "hash": checkpoint["chain"]["hash"], "version": 2},
    }
    assert checkpoint["chain"]["hash"] == chain.record_hash_v2(
        chain.LinkV2(
            1, checkpoint["id"], START + 2000, "checkpoint", "", None, "", None, None, None, chain.GENESIS
        )
    )
    assert db.rows() == []  # acknowledged
    # The next one an interval after this one, not at every check.
    check_at(api, START + 3000)
    check_at(api, START + 4000)
    second = posted(api)[1]
    assert (second["seq"], second["ts"], second["chain"]["prev"]) == (
        2,
        START + 4000,
        checkpoint["chain"]["hash"],
    )
    assert len(posted(api)) == 2


def test_any_record_postpones_the_checkpoint_and_the_chain_runs_through_both() -> None:
    _db, api, module = build()
    check_at(api, START)
    api.get_current_time_msec.return_value = START + 1500
    assert defer.ensureDeferred(module.on_account_data_updated("@a:test.local", None, "m.t", {"a": 1})).called
    check_at(api, START + 2500)  # 1 s after the change: not idle
    assert [item.get("kind", "change") for item in posted(api)] == ["change"]
    check_at(api, START + 3500)
    change, checkpoint = posted(api)
    assert checkpoint["kind"] == "checkpoint" and checkpoint["seq"] == change["seq"] + 1
    assert checkpoint["chain"]["prev"] == change["chain"]["hash"]
    api.get_current_time_msec.return_value = START + 4000
    assert defer.ensureDeferred(module.on_account_data_updated("@a:test.local", None, "m.t", {"a": 2})).called
    assert posted(api)[2]["chain"]["prev"] == checkpoint["chain"]["hash"]


def test_a_failed_check_is_logged_and_the_next_one_writes_it() -> None:
    db, api, _module = build()
    check_at(api, START)
    db.fail_next = 1
    check_at(api, START + 2000)  # does not raise: Synapse's looping call keeps running
    assert posted(api) == []
    check_at(api, START + 3000)
    assert [item["kind"] for item in posted(api)] == ["checkpoint"]


def test_an_upgrade_counts_idle_time_from_the_first_check_not_from_the_last_record() -> None:
    db, api, module = build()
    assert defer.ensureDeferred(module.on_account_data_updated("@a:test.local", None, "m.t", {"a": 1})).called
    # As a version without checkpoints left it: a chain head, no head time.
    db.conn.execute("DELETE FROM account_data_audit_meta WHERE name = 'chain_head_ts'")
    db.conn.commit()
    check_at(api, START + 10_000)
    assert len(posted(api)) == 1  # the change only
    check_at(api, START + 12_000)
    assert [item.get("kind", "change") for item in posted(api)] == ["change", "checkpoint"]
