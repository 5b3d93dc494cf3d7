"""No account-data value reaches a log, at any level (issue 19, part 5).

Delivery goes through Synapse's real ``SimpleHttpClient`` here (only its network agent is a fake), with
every logger at DEBUG, so a line Synapse's client writes about the request is caught as well as the module's
own."""

import logging
from typing import Any
from unittest.mock import Mock

import pytest
from synapse.http.client import SimpleHttpClient
from synapse.util.clock import Clock
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.web.http_headers import Headers

from synapse_account_data_audit import AccountDataAuditModule
from synapse_account_data_audit.config import AuditModuleConfig

from .fakes import FakeDatabase, FakeResponse, make_api

SECRET = "s3cr3t-recovery-key-do-not-log"


class FakeAgent:
    """The network under Synapse's client: keeps each request body, answers from ``answers`` then 200."""

    def __init__(self, answers: list[tuple[int, bytes]] | None = None) -> None:
        self.bodies: list[bytes] = []
        self.answers = answers or []

    def request(
        self, method: bytes, uri: bytes, headers: Headers | None = None, bodyProducer: Any = None
    ) -> "defer.Deferred[FakeResponse]":
        # Synapse wraps the body in a FileBodyProducer over a BytesIO.
        self.bodies.append(bodyProducer._inputFile.getvalue())
        code, body = self.answers.pop(0) if self.answers else (200, b"{}")
        return defer.succeed(FakeResponse(code, body, b"Refused" if code >= 300 else b"OK"))


def synapse_http_client(agent: FakeAgent) -> SimpleHttpClient:
    reactor = MemoryReactorClock()  # type: ignore[no-untyped-call]
    hs = Mock()
    hs.hostname = "test.local"
    hs.get_reactor.return_value = reactor
    hs.get_clock.return_value = Clock(reactor, "test.local")  # type: ignore[arg-type]
    hs.version_string = "Synapse/test"
    hs.config.server.user_agent_suffix = None
    hs.config.server.proxy_config = None
    hs.config.caches.global_factor = 1.0
    client = SimpleHttpClient(hs)
    client.agent = agent  # type: ignore[assignment]  # the parts of IAgent the client uses
    return client


def secret_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [record.getMessage() for record in caplog.records]
    lines += [caplog.text]  # with tracebacks
    return [line for line in lines if SECRET in line]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger that does not set its own level
    for name in ("synapse", "synapse.http.client", "synapse_account_data_audit"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_synapses_post_json_get_json_logs_the_request_body(debug_logs: pytest.LogCaptureFixture) -> None:
    """Why the module does not use it (if Synapse stops doing this, the workaround can go)."""
    client = synapse_http_client(FakeAgent())
    answer = defer.ensureDeferred(client.post_json_get_json("http://as.test/x", {"content": SECRET}))
    assert answer.called and answer.result == {}
    assert secret_lines(debug_logs)


def test_delivery_logs_no_value_at_any_level(debug_logs: pytest.LogCaptureFixture) -> None:
    db = FakeDatabase()
    api = make_api(db)
    # Refused (held), then too large even alone (sent again without its content), then taken.
    agent = FakeAgent([(503, b'{"errcode":"M_UNKNOWN"}'), (413, b'{"errcode":"M_TOO_LARGE"}')])
    api.http_client = synapse_http_client(agent)
    config = AuditModuleConfig(appservice_url="http://as.test", token="tok", batch_size=10)
    module = AccountDataAuditModule(config, api, Mock())
    db.fail_next = 1  # the first write fails and is retried
    value = {"key": SECRET, "passphrase": {"iterations": 500000, "salt": SECRET}}
    assert defer.ensureDeferred(
        module.on_account_data_updated("@a:test.local", None, "m.secret", value)
    ).called
    # A value that cannot be serialised is logged as lost, without its content.
    broken = {"key": SECRET, "bad": object()}
    assert defer.ensureDeferred(module.on_account_data_updated("@a:test.local", None, "m.x", broken)).called
    assert db.rows() == []  # delivered and acknowledged
    # The test means something: the value did go out, Synapse's client did log the requests at DEBUG, and
    # the module logged the refusals.
    assert any(SECRET.encode() in body for body in agent.bodies)
    messages = [record.getMessage() for record in debug_logs.records]
    assert any(m.startswith("Sending request POST") for m in messages)
    assert any("refused" in m for m in messages)
    assert any("Could not record the account-data change" in m for m in messages)
    assert secret_lines(debug_logs) == []


def test_a_database_error_that_holds_the_row_is_logged_without_it(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    db = FakeDatabase()
    api = make_api(db)
    failed: list[str] = []

    def run(desc: str, func: Any, *args: Any) -> "defer.Deferred[Any]":
        # As psycopg2 words a constraint violation: the failing row, content included, after the first line.
        if desc in ("account_data_audit_record", "account_data_audit_fetch") and desc not in failed:
            failed.append(desc)
            error = RuntimeError(
                'null value in column "x" violates not-null constraint\n'
                f"DETAIL:  Failing row contains (1, c1, @a:test.local, null, m.secret, {SECRET})."
            )
            return defer.fail(error)
        return db.run(desc, func, *args)

    api.run_db_interaction.side_effect = run
    config = AuditModuleConfig(appservice_url="http://as.test", token="tok")
    module = AccountDataAuditModule(config, api, Mock())
    value = {"key": SECRET}
    assert defer.ensureDeferred(
        module.on_account_data_updated("@a:test.local", None, "m.secret", value)
    ).called
    assert sorted(failed) == ["account_data_audit_fetch", "account_data_audit_record"]
    assert db.rows() == []  # written on the retry, then delivered
    messages = [record.getMessage() for record in debug_logs.records]
    assert any("violates not-null constraint" in m for m in messages)  # what went wrong is still said
    assert secret_lines(debug_logs) == []
