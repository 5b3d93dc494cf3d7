"""Restart cost: a clean shutdown leaves a marker and the next start skips recovery's table scan; after a
crash (no marker, or a change since it) the scan runs once."""

from unittest.mock import Mock

from twisted.internet import defer

from synapse_account_data_audit import claims
from synapse_account_data_audit.meta import get_meta_txn
from synapse_account_data_audit.recovery import CLEAN_SHUTDOWN
from synapse_account_data_audit.store import AuditStore, create_tables_txn
from synapse_account_data_audit.writer import OutboxWriter

from .fakes import FakeDatabase, make_api, synapse_write

SCAN = "FROM room_account_data WHERE stream_id >"


class Synapse:
    """The database, and Synapse's account-data stream position as the module reads it."""

    def __init__(self) -> None:
        self.db = FakeDatabase()
        self.db.run("", create_tables_txn)
        self.position = 100
        self.statements: list[str] = []
        self.db.conn.set_trace_callback(self.statements.append)

    def write(self, user: str, content: str) -> None:
        self.position += 1
        synapse_write(self.db, user, "m.t", content, self.position)

    def start(self) -> tuple[Mock, OutboxWriter]:
        """A start of the module on the account-data stream writer (fence: the position now)."""
        api = make_api(self.db)
        writer = OutboxWriter(
            api,
            AuditStore(api),
            on_written=lambda: None,
            recovery_fence=self.position,
            stream_position=lambda: self.position,
        )
        writer.start()
        return api, writer

    def scans(self) -> int:
        return sum(SCAN in statement for statement in self.statements)

    def marker(self) -> str | None:
        value = self.db.run("", get_meta_txn, CLEAN_SHUTDOWN).result
        assert value is None or isinstance(value, str)
        return value

    def outbox(self) -> list[tuple[str, str]]:
        return list(self.db.conn.execute("SELECT kind, content FROM account_data_audit_outbox ORDER BY seq"))


def record(writer: OutboxWriter, synapse: Synapse, user: str, content: str) -> None:
    synapse.write(user, content)
    defer.ensureDeferred(writer.record(user, None, "m.t", content))


def close(writer: OutboxWriter) -> "defer.Deferred[None]":
    return defer.ensureDeferred(writer.close())


def test_a_clean_restart_does_not_scan_and_a_crash_restart_scans_once() -> None:
    synapse = Synapse()
    _api, writer = synapse.start()  # the first start: sets up recovery, no scan
    record(writer, synapse, "@a:test.local", '{"n":1}')
    assert close(writer).called
    assert synapse.marker() == str(synapse.position)

    _api, writer = synapse.start()
    assert synapse.scans() == 0
    assert synapse.marker() is None  # read once: a crash of this run must not look clean
    record(writer, synapse, "@a:test.local", '{"n":2}')
    synapse.write("@lost:test.local", '{"lost":1}')  # committed, then SIGKILL before the callback

    _api, writer = synapse.start()
    assert synapse.scans() == 1
    assert synapse.outbox()[-1] == ("recovered", '{"lost":1}')
    assert [kind for kind, _ in synapse.outbox()].count("recovered") == 1


def test_a_change_on_the_stream_after_the_marker_makes_the_next_start_scan() -> None:
    synapse = Synapse()
    _api, writer = synapse.start()
    assert close(writer).called
    # Committed after the marker (e.g. a request finishing during shutdown) and never recorded.
    synapse.write("@late:test.local", '{"late":1}')
    synapse.start()
    assert synapse.scans() == 1
    assert synapse.outbox() == [("recovered", '{"late":1}')]


def test_the_marker_commits_with_the_last_pending_changes() -> None:
    synapse = Synapse()
    _api, writer = synapse.start()
    synapse.db.hold = True
    record(writer, synapse, "@a:test.local", '{"n":1}')
    closed = close(writer)
    record(writer, synapse, "@a:test.local", '{"n":2}')  # arrives while the shutdown flush runs
    synapse.db.release()
    assert closed.called
    assert synapse.marker() == str(synapse.position)
    assert [content for _, content in synapse.outbox()] == ['{"n":1}', '{"n":2}']


def test_a_change_recorded_after_the_marker_deletes_it() -> None:
    synapse = Synapse()
    _api, writer = synapse.start()
    assert close(writer).called
    assert synapse.marker() is not None
    record(writer, synapse, "@a:test.local", '{"n":1}')  # a callback that came after the shutdown flush
    assert synapse.marker() is None


def test_no_marker_while_this_runs_recovery_is_not_done() -> None:
    synapse = Synapse()
    synapse.db.run("", claims.set_state_txn, claims.STATE_RECOVERED_THROUGH, 50)
    synapse.db.fail_next = 100  # recovery keeps failing, then gives way to new changes
    _api, writer = synapse.start()
    synapse.db.fail_next = 0
    record(writer, synapse, "@a:test.local", '{"n":1}')
    assert close(writer).called
    # The window 50-100 was never looked at: the next start must scan it.
    assert synapse.marker() is None


def test_instances_that_do_not_recover_leave_no_marker() -> None:
    synapse = Synapse()
    api = make_api(synapse.db, worker_name="worker1")
    writer = OutboxWriter(api, AuditStore(api), on_written=lambda: None, stream_position=lambda: 100)
    defer.ensureDeferred(writer.record("@a:test.local", None, "m.t", "{}"))
    assert close(writer).called
    assert synapse.marker() is None
