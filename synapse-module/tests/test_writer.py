"""The outbox writer: the callback never waits for the database (unless far behind), order holds, changes
pending together share one transaction, failures are retried, shutdown waits for pending changes."""

from typing import Any
from unittest.mock import Mock

from twisted.internet import defer

from synapse_account_data_audit import claims
from synapse_account_data_audit.config import AuditModuleConfig
from synapse_account_data_audit.store import AuditStore, create_tables_txn
from synapse_account_data_audit.writer import RECOVERY_ATTEMPTS, OutboxWriter, register_shutdown_flush

from .fakes import FakeDatabase, make_api, synapse_write

CONFIG = AuditModuleConfig(appservice_url="http://as.test", token="tok")


def build(max_pending: int = 10_000) -> tuple[FakeDatabase, Mock, OutboxWriter, list[int]]:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    api = make_api(db)
    written: list[int] = []
    writer = OutboxWriter(
        api, AuditStore(api), on_written=lambda: written.append(len(db.rows())), max_pending=max_pending
    )
    return db, api, writer, written


def record(writer: OutboxWriter, n: int) -> "defer.Deferred[None]":
    return defer.ensureDeferred(writer.record(f"@u{n}:test.local", None, "m.t", f'{{"n":{n}}}'))


def users_in_seq_order(db: FakeDatabase) -> list[str]:
    return [user for _seq, user, _type in sorted(db.rows())]


def test_record_returns_before_the_database_answers() -> None:
    db, _api, writer, written = build()
    db.hold = True
    assert record(writer, 1).called
    assert db.rows() == [] and writer.pending == 1
    db.release()
    assert users_in_seq_order(db) == ["@u1:test.local"]
    assert writer.pending == 0
    assert written == [1]  # delivery is woken once the row is committed, not before


def test_changes_pending_together_share_one_transaction_in_order() -> None:
    db, _api, writer, written = build()
    db.hold = True
    for n in range(4):
        record(writer, n)
    # The first write took change 0; 1-3 arrived while it ran and go together in the next one.
    assert len(db.held) == 1
    db.release()
    assert users_in_seq_order(db) == [f"@u{n}:test.local" for n in range(4)]
    assert db.descs.count("account_data_audit_record") == 2
    assert written == [1, 4]


def test_a_failed_write_is_retried_after_a_backoff_losing_nothing() -> None:
    db, api, writer, _written = build()
    db.fail_next = 2
    record(writer, 1)
    record(writer, 2)
    assert api.sleep.await_count == 2
    assert users_in_seq_order(db) == ["@u1:test.local", "@u2:test.local"]


def test_a_write_that_failed_after_it_committed_is_not_written_twice() -> None:
    db, api, writer, _written = build()
    db.fail_after_commit = 1
    db.hold = True
    record(writer, 1)
    record(writer, 2)
    db.release()  # the first write (change 1) commits, then fails; its retry takes changes 1 and 2
    assert api.sleep.await_count == 1
    assert users_in_seq_order(db) == ["@u1:test.local", "@u2:test.local"]


def test_the_retry_skips_rows_already_committed_even_once_they_were_delivered() -> None:
    db, api, writer, _written = build()
    db.fail_after_commit = 1
    retry: defer.Deferred[None] = defer.Deferred()
    api.sleep = Mock(return_value=retry)
    record(writer, 1)  # committed, then the write "failed"; the writer backs off
    assert users_in_seq_order(db) == ["@u1:test.local"]
    db.conn.execute("DELETE FROM account_data_audit_outbox")  # delivered meanwhile
    db.conn.commit()
    retry.callback(None)
    assert db.rows() == []
    assert writer.pending == 0


def test_the_callback_waits_only_when_too_many_changes_are_pending() -> None:
    db, _api, writer, _written = build(max_pending=2)
    db.hold = True
    first, second, third = record(writer, 1), record(writer, 2), record(writer, 3)
    assert first.called and second.called
    assert not third.called
    db.release()
    assert third.called
    assert len(db.rows()) == 3


def test_flush_resolves_once_everything_is_written() -> None:
    db, _api, writer, _written = build()
    assert defer.ensureDeferred(writer.flush()).called  # nothing pending
    db.hold = True
    record(writer, 1)
    flushed = defer.ensureDeferred(writer.flush())
    assert not flushed.called
    db.release()
    assert flushed.called and len(db.rows()) == 1


def test_shutdown_waits_for_pending_changes() -> None:
    db, api, writer, _written = build()
    reactor = Mock()
    register_shutdown_flush(api, writer, reactor)
    (phase, event, trigger), _ = reactor.addSystemEventTrigger.call_args
    assert (phase, event) == ("before", "shutdown")
    db.hold = True
    record(writer, 1)
    shutdown: Any = trigger()
    assert isinstance(shutdown, defer.Deferred) and not shutdown.called
    db.release()
    assert shutdown.called and len(db.rows()) == 1


def test_recovery_runs_before_any_change_is_written_and_recovered_rows_come_first() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    db.run("", claims.set_state_txn, claims.STATE_RECOVERED_THROUGH, 10)
    synapse_write(db, "@lost:test.local", "m.t", '{"lost":1}', 11)  # committed, never recorded
    api = make_api(db)
    db.hold = True
    writer = OutboxWriter(api, AuditStore(api), on_written=lambda: None, recovery_fence=11)
    writer.start()
    record(writer, 1)  # arrives while recovery runs
    assert writer.recovering
    db.release()
    assert users_in_seq_order(db) == ["@lost:test.local", "@u1:test.local"]
    assert not writer.recovering


def test_recovery_that_keeps_failing_gives_way_to_new_changes() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    api = make_api(db)
    writer = OutboxWriter(api, AuditStore(api), on_written=lambda: None, recovery_fence=5)
    db.fail_next = RECOVERY_ATTEMPTS
    writer.start()
    assert api.sleep.await_count == RECOVERY_ATTEMPTS
    record(writer, 1)
    assert users_in_seq_order(db) == ["@u1:test.local"]
    # Not marked as run: the next start looks at this window again.
    assert db.run("", claims.get_state_txn, claims.STATE_RECOVERED_THROUGH).result is None
