"""Every stop is seen (a wrong delivery_instance, a token mismatch, a stalled outbox read by every instance)
and delivery resumes at once when the appservice says it is back."""

import logging
from collections.abc import Callable
from typing import Any
from unittest.mock import Mock

import pytest
from synapse.api.errors import HttpResponseException, SynapseError
from synapse.config.workers import WriterLocations
from synapse.module_api.errors import ConfigError
from twisted.internet import defer

from synapse_account_data_audit import AccountDataAuditModule
from synapse_account_data_audit.config import AuditModuleConfig
from synapse_account_data_audit.health_stats import HEALTH, LAST_DELIVERY_NAME, StatsReader
from synapse_account_data_audit.instances import check_delivery_instance, known_instances
from synapse_account_data_audit.meta import get_meta_txn
from synapse_account_data_audit.web import check_bearer

from .fakes import FakeDatabase, make_api

CONFIG = AuditModuleConfig(appservice_url="http://as.test", token="tok", delivery_instance="acct")


def with_workers(api: Mock) -> Mock:
    """Synapse's worker config as README's layout has it: the main process and an account-data writer."""
    api._hs = Mock()
    worker = api._hs.config.worker
    worker.instance_map = {"master": Mock(), "acct": Mock()}
    worker.writers = WriterLocations(account_data=["acct"])
    worker.run_background_tasks_on = "master"
    worker.federation_shard_config.instances = []
    worker.pusher_shard_config.instances = []
    return api


def looping(api: Mock, desc: str) -> Callable[[], Any]:
    (call,) = [c for c in api.looping_background_call.call_args_list if c.kwargs["desc"] == desc]
    f: Callable[[], Any] = call.args[0]
    return f


def run(f: Callable[[], Any]) -> None:
    assert defer.ensureDeferred(f()).called


def change(module: AccountDataAuditModule, n: int) -> None:
    assert defer.ensureDeferred(module.on_account_data_updated(f"@u{n}:t", None, "m.t", {"n": n})).called


@pytest.mark.parametrize("name", ["acct", "master"])
def test_a_known_delivery_instance_passes(name: str) -> None:
    check_delivery_instance(with_workers(make_api(FakeDatabase())), name)


def test_a_misspelt_delivery_instance_stops_startup_naming_it_and_the_known_ones() -> None:
    api = with_workers(make_api(FakeDatabase()))
    assert known_instances(api) == ["acct", "master"]
    with pytest.raises(ConfigError, match=r"'delivery_instance' is 'acc'.*: acct, master\."):
        AccountDataAuditModule(
            AuditModuleConfig("http://as.test", "tok", delivery_instance="acc"), api, Mock()
        )
    with pytest.raises(ConfigError, match=r"the main process is 'master'"):
        check_delivery_instance(api, "main")


def test_a_worker_knows_its_own_name() -> None:
    api = with_workers(make_api(FakeDatabase(), worker_name="bg"))
    check_delivery_instance(api, "bg")


def test_a_token_mismatch_is_named_with_the_keys_to_fix(caplog: pytest.LogCaptureFixture) -> None:
    api = make_api(FakeDatabase())
    module = AccountDataAuditModule(AuditModuleConfig("http://as.test", "tok"), api, Mock())
    refused = HttpResponseException(403, "Forbidden", b'{"errcode":"M_UNKNOWN_TOKEN","error":"x"}')
    api.appservice.side_effect = [refused, {}]
    with caplog.at_level(logging.ERROR):
        change(module, 1)
    (line,) = [r.getMessage() for r in caplog.records if "token mismatch" in r.getMessage()]
    assert "M_UNKNOWN_TOKEN" in line and "`registration_file`" in line and "ingest.token" in line


def test_an_ordinary_refusal_is_not_called_a_token_mismatch(caplog: pytest.LogCaptureFixture) -> None:
    api = make_api(FakeDatabase())
    module = AccountDataAuditModule(AuditModuleConfig("http://as.test", "tok"), api, Mock())
    api.appservice.side_effect = [HttpResponseException(503, "Unavailable", b'{"errcode":"M_UNKNOWN"}'), {}]
    change(module, 1)
    assert not [r for r in caplog.records if "token mismatch" in r.getMessage()]


def test_each_batch_tells_the_appservice_the_checkpoint_interval() -> None:
    api = make_api(FakeDatabase())
    module = AccountDataAuditModule(
        AuditModuleConfig("http://as.test", "t", checkpoint_interval_seconds=60), api, Mock()
    )
    change(module, 1)
    assert api.appservice.call_args.args[1]["checkpoint_interval_seconds"] == 60


def held_backoff(api: Mock) -> None:
    """Backoff sleeps that never end by themselves (a 60 s backoff, as far as the test is concerned)."""
    api.sleep = Mock(side_effect=lambda _s: defer.Deferred())


def test_a_wake_on_the_delivering_instance_ends_the_backoff_at_once() -> None:
    db = FakeDatabase()
    api = make_api(db)
    module = AccountDataAuditModule(AuditModuleConfig("http://as.test", "t"), api, Mock())
    held_backoff(api)
    api.appservice.side_effect = [ConnectionError("refused"), {}]
    change(module, 1)
    assert api.appservice.call_count == 1 and len(db.rows()) == 1  # backing off
    assert module._deliverer is not None and module._deliverer.backing_off
    run(module._wake)  # what POST …/wake does
    assert api.appservice.call_count == 2 and db.rows() == []


def test_a_wake_taken_by_another_instance_reaches_the_delivering_one_through_the_database() -> None:
    db = FakeDatabase()
    deliverer_api = make_api(db, worker_name="acct")
    delivering = AccountDataAuditModule(CONFIG, deliverer_api, Mock())
    main = AccountDataAuditModule(CONFIG, make_api(db), Mock())  # serves the client listener
    poll = looping(deliverer_api, "account_data_audit_wake_poll")
    run(poll)  # startup: the value a later request changes
    held_backoff(deliverer_api)
    deliverer_api.appservice.side_effect = [ConnectionError("refused"), {}]
    change(delivering, 1)
    run(poll)
    assert deliverer_api.appservice.call_count == 1  # nothing asked yet: still backing off
    run(main._wake)
    assert deliverer_api.appservice.call_count == 1  # main cannot reach the loop directly
    run(poll)
    assert deliverer_api.appservice.call_count == 2 and db.rows() == []


def test_every_instance_reads_the_outbox_from_the_database_and_warns_when_delivery_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = FakeDatabase()
    HEALTH.last_delivery_ts = None  # this process's view: other tests delivered
    now = 1_700_000_000_000
    writer_api = make_api(db, worker_name="acct")
    writer_api.get_current_time_msec.return_value = now
    held_backoff(writer_api)
    writer_api.appservice.side_effect = ConnectionError("refused")
    writer = AccountDataAuditModule(CONFIG, writer_api, Mock())
    change(writer, 1)
    change(writer, 2)

    main_api = make_api(db)
    AccountDataAuditModule(
        AuditModuleConfig("http://as.test", "tok", "acct", stall_warning_seconds=60), main_api, Mock()
    )
    read = looping(main_api, "account_data_audit_health")
    main_api.get_current_time_msec.return_value = now + 30_000
    run(read)
    assert (HEALTH.depth, HEALTH.oldest_ts) == (2, now)
    assert not [r for r in caplog.records if "has stopped" in r.getMessage()]
    main_api.get_current_time_msec.return_value = now + 61_000
    with caplog.at_level(logging.WARNING):
        run(read)
        run(read)  # rate-limited: once
    (line,) = [r.getMessage() for r in caplog.records if "has stopped" in r.getMessage()]
    assert "2 changes waiting" in line and "'acct'" in line


def test_an_acknowledged_batch_stores_the_delivery_time_for_every_instance() -> None:
    db = FakeDatabase()
    api = make_api(db)
    module = AccountDataAuditModule(AuditModuleConfig("http://as.test", "t"), api, Mock())
    change(module, 1)
    stored = db.run("t", get_meta_txn, LAST_DELIVERY_NAME).result
    assert stored == str(api.get_current_time_msec.return_value)


def test_the_status_age_is_the_oldest_waiting_change() -> None:
    reader = StatsReader(Mock(), Mock(), "acct", 60)
    HEALTH.depth, HEALTH.oldest_ts, HEALTH.last_delivery_ts = 1, 1_000_000, None
    assert HEALTH.oldest_age_seconds(1_100.0) == 100.0
    assert HEALTH.to_json("acct", 60, "master")["delivery_instance"] == "acct"
    assert reader.warn_if_stalled(1_100.0)


def request_with(header: bytes | None) -> Mock:
    request = Mock()
    request.path = b"/_synapse/client/account_data_audit/v1/wake"
    request.requestHeaders.getRawHeaders.return_value = [header] if header is not None else None
    return request


def test_the_endpoints_take_only_the_shared_token() -> None:
    check_bearer(request_with(b"Bearer tok"), "tok")
    with pytest.raises(SynapseError) as missing:
        check_bearer(request_with(None), "tok")
    assert (missing.value.code, missing.value.errcode) == (401, "M_MISSING_TOKEN")
    with pytest.raises(SynapseError) as wrong:
        check_bearer(request_with(b"Bearer nope"), "tok")
    assert (wrong.value.code, wrong.value.errcode) == (403, "M_UNKNOWN_TOKEN")
    assert "token mismatch" in wrong.value.msg and "ingest.token" in wrong.value.msg
