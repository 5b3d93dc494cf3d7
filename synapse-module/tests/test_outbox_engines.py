"""The outbox's engine-specific SQL (issue #25's mutation testing): PostgreSQL's sequence block and lock, as
a recording transaction sees them (the e2e suite runs them on a real PostgreSQL), and an old SQLite outbox
gaining the columns added since."""

from collections.abc import Iterator
from typing import Any, cast

from synapse.storage.database import LoggingTransaction
from synapse.storage.engines import PostgresEngine

from synapse_account_data_audit.outbox import _allocate_seqs_txn, create_outbox_txn, lock_txn
from synapse_account_data_audit.store import create_tables_txn

from .fakes import FakeDatabase


class PostgresTxn:
    """Records each statement and answers with the next of ``answers`` (as fetchone and as rows)."""

    def __init__(self, answers: list[list[tuple[Any, ...]]]) -> None:
        self.database_engine = PostgresEngine.__new__(PostgresEngine)
        self.statements: list[tuple[str, tuple[Any, ...] | None]] = []
        self.answers = answers
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, args: tuple[Any, ...] | None = None) -> None:
        self.statements.append((sql, args))
        self.rows = self.answers.pop(0) if self.answers else []

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)


def as_txn(txn: PostgresTxn) -> LoggingTransaction:
    return cast(LoggingTransaction, txn)


def test_postgres_draws_a_block_of_seqs_from_the_tables_sequence_in_one_step() -> None:
    txn = PostgresTxn([[("public.outbox_seq",)], [(41,)], [(43,)]])
    assert _allocate_seqs_txn(as_txn(txn), 3) == 41
    assert txn.statements == [
        ("SELECT pg_get_serial_sequence('account_data_audit_outbox', 'seq')", None),
        ("SELECT nextval(?)", ("public.outbox_seq",)),
        ("SELECT setval(?, ?)", ("public.outbox_seq", 43)),
    ]


def test_postgres_moves_the_sequence_past_a_block_of_two() -> None:
    txn = PostgresTxn([[("s",)], [(7,)], [(8,)]])
    assert _allocate_seqs_txn(as_txn(txn), 2) == 7
    assert txn.statements[-1] == ("SELECT setval(?, ?)", ("s", 8))


def test_postgres_draws_a_single_seq_without_moving_the_sequence_again() -> None:
    txn = PostgresTxn([[("s",)], [(7,)]])
    assert _allocate_seqs_txn(as_txn(txn), 1) == 7
    assert [sql for sql, _ in txn.statements] == [
        "SELECT pg_get_serial_sequence('account_data_audit_outbox', 'seq')",
        "SELECT nextval(?)",
    ]


def test_inserters_lock_the_outbox_on_postgres_and_not_on_sqlite() -> None:
    txn = PostgresTxn([])
    lock_txn(as_txn(txn))
    assert txn.statements == [("LOCK TABLE account_data_audit_outbox IN SHARE ROW EXCLUSIVE MODE", None)]
    db = FakeDatabase()
    db.run("", create_tables_txn)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    db.run("", lock_txn)
    assert statements == []


def test_a_postgres_outbox_of_an_older_version_gains_the_new_columns_if_not_there_yet() -> None:
    present = [("seq",), ("change_id",), ("user_id",), ("room_id",), ("account_data_type",), ("content",)]
    present += [("created_ts",), ("kind",), ("stream_id",), ("details",), ("keyed_digest",), ("prev_hash",)]
    present += [("hash",), ("digest_group",)]
    # The create, then the columns read once for each column added since the first release.
    txn = PostgresTxn([[], *[present] * 9])
    create_outbox_txn(as_txn(txn))
    create = txn.statements[0][0]
    assert "seq BIGSERIAL PRIMARY KEY" in create and "AUTOINCREMENT" not in create
    assert [sql for sql, _ in txn.statements if sql.startswith("ALTER")] == [
        "ALTER TABLE account_data_audit_outbox ADD COLUMN IF NOT EXISTS chain_version INTEGER",
        "ALTER TABLE account_data_audit_outbox ADD COLUMN IF NOT EXISTS source TEXT",
    ]


def test_an_sqlite_outbox_of_the_first_release_gains_the_new_columns_and_keeps_its_rows() -> None:
    db = FakeDatabase()
    db.conn.execute(
        "CREATE TABLE account_data_audit_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " change_id TEXT NOT NULL, user_id TEXT NOT NULL, room_id TEXT, account_data_type TEXT NOT NULL,"
        " content TEXT NOT NULL, created_ts BIGINT NOT NULL)"
    )
    db.conn.execute(
        "INSERT INTO account_data_audit_outbox (change_id, user_id, account_data_type, content, created_ts)"
        " VALUES ('c1', '@a:x', 'm.t', '{}', 5)"
    )
    db.run("", create_outbox_txn)
    columns = [row[1] for row in db.conn.execute("PRAGMA table_info(account_data_audit_outbox)")]
    assert columns[7:] == [
        "kind",
        "stream_id",
        "details",
        "keyed_digest",
        "prev_hash",
        "hash",
        "digest_group",
        "chain_version",
        "source",
    ]
    assert list(
        db.conn.execute("SELECT seq, change_id, kind, chain_version FROM account_data_audit_outbox")
    ) == [(1, "c1", "change", None)]
