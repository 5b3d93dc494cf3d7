"""The delivery loop with several requests open: a new change goes out at once, whatever is in flight."""

from typing import Any
from unittest.mock import Mock

from synapse.api.errors import HttpResponseException
from twisted.internet import defer

from synapse_account_data_audit import AccountDataAuditModule
from synapse_account_data_audit.config import AuditModuleConfig
from synapse_account_data_audit.delivery import FAILURES, Deliverer
from synapse_account_data_audit.store import AuditStore

from .fakes import FakeDatabase, make_api

CONFIG = AuditModuleConfig(appservice_url="http://as.test", token="tok", batch_size=100)


def _posted(api: Mock) -> list[list[int]]:
    return [[c["seq"] for c in call.args[1]["changes"]] for call in api.appservice.call_args_list]


def _record(recorder: AccountDataAuditModule, user: str, n: int) -> None:
    done = defer.ensureDeferred(recorder.on_account_data_updated(user, None, "m.t", {"n": n}))
    assert done.called


def test_a_change_committed_while_an_empty_fetch_runs_goes_out_without_waiting_for_an_answer() -> None:
    db = FakeDatabase()
    # Records only (another instance delivers), as the writer on PostgreSQL commits on its own connection.
    recorder = AccountDataAuditModule(CONFIG, make_api(db, worker_name="other"), Mock())
    api = make_api(db)
    pending: list[defer.Deferred[Any]] = []

    def post(_url: str, _body: Any, headers: Any) -> defer.Deferred[Any]:
        pending.append(defer.Deferred())
        return pending[-1]

    api.appservice = Mock(side_effect=post)
    deliverer = Deliverer(api, CONFIG, AuditStore(api))
    _record(recorder, "@burster:t", 1)
    deliverer.kick()
    assert _posted(api) == [[1]]  # the burster's record, not answered for a long while
    late: list[tuple[defer.Deferred[Any], Any]] = []
    run_db = api.run_db_interaction.side_effect

    def run(desc: str, func: Any, *args: Any) -> Any:
        result = run_db(desc, func, *args)
        if desc == "account_data_audit_fetch" and not late:
            held: defer.Deferred[Any] = defer.Deferred()
            late.append((held, result))
            return held
        return result

    api.run_db_interaction.side_effect = run
    deliverer.kick()  # a fetch starts, and finds nothing...
    _record(recorder, "@alice:t", 2)  # ...while alice's change commits, and kicks before the fetch returns
    deliverer.kick()
    held, result = late[0]
    result.chainDeferred(held)
    # The empty fetch is not the last word: alice's change goes out now, not after the burster's answer.
    assert _posted(api) == [[1], [2]]
    for answer in pending:
        answer.callback({})
    assert db.rows() == []


def test_a_batch_still_being_posted_is_sent_again_at_once_without_a_backoff() -> None:
    db = FakeDatabase()
    api = make_api(db)
    module = AccountDataAuditModule(CONFIG, api, Mock())
    pending_answer = HttpResponseException(
        503, "Service Unavailable", b'{"errcode":"M_UNKNOWN","error":"still posting","pending":true}'
    )
    api.appservice.side_effect = [pending_answer, pending_answer, {}]
    failures_before = FAILURES._value.get()
    _record(module, "@u:t", 1)
    assert _posted(api) == [[1], [1], [1]]
    # Sent again as such: the appservice joins it to the work under way.
    assert [call.args[1].get("again") for call in api.appservice.call_args_list] == [None, True, True]
    assert api.sleep.call_count == 0  # no backoff: it was never a failure
    assert FAILURES._value.get() == failures_before
    assert db.rows() == []
