"""Test doubles: a Mock(spec=ModuleApi) whose database calls run against a real in-memory SQLite."""

from __future__ import annotations

import inspect
import json
import sqlite3
from collections.abc import Callable
from typing import Any
from unittest.mock import AsyncMock, Mock

import pytest
from synapse.api.errors import HttpResponseException
from synapse.http.client import SimpleHttpClient
from synapse.module_api import ModuleApi
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

SYNAPSE_TABLES = """
CREATE TABLE account_data (
    user_id TEXT NOT NULL, account_data_type TEXT NOT NULL, stream_id BIGINT NOT NULL, content TEXT NOT NULL,
    instance_name TEXT, UNIQUE (user_id, account_data_type)
);
CREATE TABLE room_account_data (
    user_id TEXT NOT NULL, room_id TEXT NOT NULL, account_data_type TEXT NOT NULL, stream_id BIGINT NOT NULL,
    content TEXT NOT NULL, instance_name TEXT, UNIQUE (user_id, room_id, account_data_type)
);
CREATE TABLE room_tags_revisions (
    user_id TEXT NOT NULL, room_id TEXT NOT NULL, stream_id BIGINT NOT NULL, instance_name TEXT,
    UNIQUE (user_id, room_id)
);
CREATE TABLE room_tags (
    user_id TEXT NOT NULL, room_id TEXT NOT NULL, tag TEXT NOT NULL, content TEXT NOT NULL,
    UNIQUE (user_id, room_id, tag)
);
CREATE TABLE push_rules_stream (
    stream_id BIGINT NOT NULL, event_stream_ordering BIGINT NOT NULL, user_id TEXT NOT NULL,
    rule_id TEXT NOT NULL, op TEXT NOT NULL, priority_class SMALLINT, priority INTEGER, conditions TEXT,
    actions TEXT, instance_name TEXT
);
"""


class SqliteTxn:
    """Just enough of Synapse's LoggingTransaction for the outbox functions."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.database_engine = Mock()  # not a PostgresEngine: SQLite DDL

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        self._cursor.execute(sql, args)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def __iter__(self) -> Any:
        return iter(self._cursor)


class FakeDatabase:
    """Runs each interaction at once, or, while ``hold`` is set, when ``release`` is called (a slow
    database); ``fail_next`` makes that many interactions raise, ``fail_after_commit`` that many raise after
    they committed."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        # The part of Synapse's schema the module reads (the writer reads rows back; recovery scans them).
        self.conn.executescript(SYNAPSE_TABLES)
        self.hold = False
        self.fail_next = 0
        #: Outbox writes (``account_data_audit_record``) that commit and then raise (a connection lost after
        #: COMMIT).
        self.fail_after_commit = 0
        self.held: list[tuple[str, Callable[..., Any], tuple[Any, ...], defer.Deferred[Any]]] = []
        self.descs: list[str] = []

    def run(self, desc: str, func: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        self.descs.append(desc)
        if self.hold:
            d: defer.Deferred[Any] = defer.Deferred()
            self.held.append((desc, func, args, d))
            return d
        return self._run_now(desc, func, *args)

    def release(self) -> None:
        """Runs the held interactions (and any they lead to) until none is held."""
        self.hold = False
        while self.held:
            desc, func, args, d = self.held.pop(0)
            self._run_now(desc, func, *args).chainDeferred(d)

    def _run_now(self, desc: str, func: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        if self.fail_next:
            self.fail_next -= 1
            return defer.fail(RuntimeError("database unavailable"))
        cursor = self.conn.cursor()
        try:
            result = func(SqliteTxn(cursor), *args)
            self.conn.commit()
        except Exception as e:
            self.conn.rollback()
            return defer.fail(e)
        if self.fail_after_commit and desc == "account_data_audit_record":
            self.fail_after_commit -= 1
            return defer.fail(ConnectionError("connection lost after COMMIT"))
        return defer.succeed(result)

    def rows(self) -> list[tuple[Any, ...]]:
        return list(
            self.conn.execute("SELECT seq, user_id, account_data_type FROM account_data_audit_outbox")
        )


def make_api(db: FakeDatabase, worker_name: str | None = None) -> Mock:
    api = Mock(spec=ModuleApi)
    api.worker_name = worker_name
    api.server_name = "test.local"
    api.run_db_interaction.side_effect = db.run
    api.get_current_time_msec.return_value = 1_700_000_000_000
    api.run_as_background_process.side_effect = lambda _desc, f, *a, **k: defer.ensureDeferred(f(*a, **k))
    # Runs at once: these fakes have no reactor turns.
    api.delayed_background_call.side_effect = lambda _msec, f, *a, desc=None, **k: defer.maybeDeferred(
        lambda: defer.ensureDeferred(r) if inspect.iscoroutine(r := f(*a, **k)) else r
    )
    api.sleep = AsyncMock()
    api.http_client = fake_http_client(api)
    return api


class FakeResponse:
    """An HTTP answer as Synapse's client hands it over (headers read, body delivered on request): the
    parts of Twisted's ``IResponse`` that Synapse's client and ``readBody`` use."""

    def __init__(self, code: int, body: bytes, phrase: bytes = b"OK") -> None:
        self.code = code
        self.phrase = phrase
        self.version = (b"HTTP", 1, 1)
        self.headers = Headers()
        self.length = len(body)
        self.request = None
        self.previousResponse = None
        self._body = body

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(Mock())
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))  # type: ignore[no-untyped-call]

    def setPreviousResponse(self, response: Any) -> None:
        self.previousResponse = response


def fake_http_client(api: Mock) -> Mock:
    """Synapse's HTTP client, whose ``request`` hands each POST to ``api.appservice`` (an AsyncMock taking
    (url, body as JSON, headers=...) and returning the answer's JSON or raising HttpResponseException), the
    appservice stand-in the tests program. ``post_json_get_json`` fails the test: it logs request bodies."""
    api.appservice = AsyncMock(return_value={})

    async def request(
        method: str, uri: str, data: bytes | None = None, headers: Headers | None = None
    ) -> Any:
        assert method == "POST" and data is not None
        raw = dict(headers.getAllRawHeaders()) if headers is not None else {}
        try:
            answer = await api.appservice(uri, json.loads(data), headers=raw)
        except HttpResponseException as e:
            return FakeResponse(e.code, e.response or b"", e.msg.encode())
        return FakeResponse(200, json.dumps(answer).encode())

    client = Mock(spec=SimpleHttpClient)
    client.request.side_effect = request
    # Not an Exception: delivery retries those for ever.
    client.post_json_get_json.side_effect = lambda *_a, **_k: pytest.fail("post_json_get_json logs bodies")
    return client


def synapse_write(
    db: FakeDatabase, user_id: str, data_type: str, content: str, stream_id: int, room: str | None = None
) -> None:
    """Does what Synapse does on an account-data change: one row per key, rewritten with a new position."""
    if room is None:
        db.conn.execute(
            "INSERT INTO account_data (user_id, account_data_type, stream_id, content) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id, account_data_type) DO UPDATE SET stream_id = ?, content = ?",
            (user_id, data_type, stream_id, content, stream_id, content),
        )
    else:
        db.conn.execute(
            "INSERT INTO room_account_data (user_id, room_id, account_data_type, stream_id, content)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, room_id, account_data_type) DO UPDATE SET stream_id = ?, content = ?",
            (user_id, room, data_type, stream_id, content, stream_id, content),
        )
    db.conn.commit()


def synapse_tag(db: FakeDatabase, user_id: str, room: str, stream_id: int) -> None:
    db.conn.execute(
        "INSERT INTO room_tags_revisions (user_id, room_id, stream_id) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, room_id) DO UPDATE SET stream_id = ?",
        (user_id, room, stream_id, stream_id),
    )
    db.conn.commit()
