"""Where crash recovery runs: only on the one account-data stream writer, if its position is known."""

from unittest.mock import Mock

import pytest
from twisted.internet import defer

from synapse_account_data_audit import AccountDataAuditModule, AuditModuleConfig, recovery_fence

from .fakes import FakeDatabase, make_api


def api_with(worker: str | None, writers: list[str] | None, position: int | None) -> Mock:
    api = make_api(FakeDatabase(), worker_name=worker)
    if writers is not None:
        api._hs = Mock()
        api._hs.config.worker.writers.account_data = writers
    if position is not None:
        api._store = Mock()
        api._store.get_max_account_data_stream_id.return_value = position
    return api


@pytest.mark.parametrize(
    ("worker", "writers", "position", "fence"),
    [
        (None, ["master"], 42, 42),  # the main process writes account data (the default)
        ("acct", ["acct"], 42, 42),  # a worker is the writer: recovery runs there
        (None, ["acct"], 42, None),  # the main process never sees a change then
        ("acct", ["acct", "acct2"], 42, None),  # several writers: one's position bounds nothing
        (None, ["master"], None, None),  # a Synapse that does not expose the position
        (None, None, 42, None),  # writers unknown: it might not be this instance
    ],
)
def test_recovery_fence(
    worker: str | None, writers: list[str] | None, position: int | None, fence: int | None
) -> None:
    assert recovery_fence(api_with(worker, writers, position)) == fence


def test_deactivation_is_recorded_as_a_record_of_its_own() -> None:
    db = FakeDatabase()
    api = make_api(db)
    module = AccountDataAuditModule(
        AuditModuleConfig(appservice_url="http://as.test", token="t"), api, Mock()
    )
    api.register_third_party_rules_callbacks.assert_called_once_with(
        on_user_deactivation_status_changed=module.on_user_deactivation_status_changed
    )
    assert defer.ensureDeferred(
        module.on_user_deactivation_status_changed("@gone:test.local", True, True)
    ).called
    (body,) = [call.args[1] for call in api.appservice.call_args_list]
    (wire,) = body["changes"]
    assert {k: wire[k] for k in ("kind", "user_id", "deactivated", "by_admin")} == {
        "kind": "deactivation",
        "user_id": "@gone:test.local",
        "deactivated": True,
        "by_admin": True,
    }
    assert set(wire["chain"]) == {"prev", "hash", "version"} and len(wire["keyed_digest"]) == 64
