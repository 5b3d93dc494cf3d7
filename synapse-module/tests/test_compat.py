"""Startup checks of the Synapse the module runs on: version, module API, and the shape of the tables it reads
(see ``compat``). Each says what it found and what it needs, and turns off only what depends on it."""

import importlib.metadata
import logging
from typing import Any

import pytest
from synapse.module_api import ModuleApi
from twisted.internet import defer

from synapse_account_data_audit import compat
from synapse_account_data_audit.claims import RECORDED_TABLE, STATE_RECOVERED_THROUGH, set_state_txn
from synapse_account_data_audit.meta import get_meta_txn
from synapse_account_data_audit.recovery import CLEAN_SHUTDOWN
from synapse_account_data_audit.store import AuditStore, create_tables_txn
from synapse_account_data_audit.writer import OutboxWriter

from .fakes import FakeDatabase, make_api, synapse_write


@pytest.mark.parametrize(
    ("found", "parsed"),
    [
        ("1.163.2", (1, 163, 2)),
        ("1.164.0rc1", (1, 164, 0)),
        ("1.141.0 (b=main,2494879)", (1, 141, 0)),  # Synapse run from a git checkout
        ("unknown", None),
    ],
)
def test_parse_version(found: str, parsed: Any) -> None:
    assert compat.parse_version(found) == parsed


def test_the_range_ends_are_the_ones_ci_tests() -> None:
    # scripts/setup-synapse-venv.sh builds these two; pyproject.toml states the floor.
    assert compat.SUPPORTED == "1.141.0 to 1.163.x"


@pytest.mark.parametrize("found", ["1.141.0", "1.150.1", "1.163.2", "1.163.9"])
def test_a_version_in_the_range_is_one_info_line(found: str) -> None:
    assert compat.version_message(found) == (
        logging.INFO,
        f"Account-data audit: Synapse {found} is supported (1.141.0 to 1.163.x)",
    )


def test_an_older_version_says_what_it_found_what_it_needs_and_what_it_costs() -> None:
    level, message = compat.version_message("1.140.0")
    assert level == logging.WARNING
    assert "Synapse 1.140.0 is older than 1.141.0" in message
    assert "without durable transaction IDs" in message


def test_a_newer_series_is_a_warning_naming_the_newest_tested() -> None:
    level, message = compat.version_message("1.164.0")
    assert level == logging.WARNING
    assert "Synapse 1.164.0 is newer than the newest tested, 1.163.2" in message


def test_an_unreadable_version_is_a_warning() -> None:
    assert compat.version_message("weird")[0] == logging.WARNING


def test_the_installed_synapse_has_the_module_api_the_module_calls() -> None:
    assert compat.missing_module_api(ModuleApi) == []


def test_a_module_api_without_a_method_or_keyword_is_refused_naming_both() -> None:
    class OldModuleApi:
        # As before 1.136.0: no run_as_background_process; and a looping_background_call of long ago.
        def __getattr__(self, name: str) -> Any:
            raise AttributeError(name)

        def looping_background_call(self, f: Any, msec: float, *args: Any, desc: str | None = None) -> None:
            pass

    for name in compat.REQUIRED_API:
        if name not in ("run_as_background_process", "looping_background_call"):
            setattr(OldModuleApi, name, getattr(ModuleApi, name))
    assert compat.missing_module_api(OldModuleApi) == [
        "looping_background_call(run_on_all_instances=)",
        "run_as_background_process",
    ]
    refused = r"Synapse 1\.135\.0: its module API has no .*needs Synapse 1\.136\.0"
    with pytest.raises(RuntimeError, match=refused):
        compat.check_synapse("1.135.0", OldModuleApi)


def test_check_synapse_logs_the_version_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="synapse_account_data_audit.compat"):
        compat.check_synapse("1.163.2", ModuleApi)
    assert caplog.messages == ["Account-data audit: Synapse 1.163.2 is supported (1.141.0 to 1.163.x)"]


def _check(db: FakeDatabase) -> compat.TableCheck:
    check = db.run("", compat.check_tables_txn).result
    assert isinstance(check, compat.TableCheck)
    return check


def _reshape(db: FakeDatabase, table: str, columns: str) -> None:
    db.conn.execute(f"DROP TABLE {table}")
    if columns:
        db.conn.execute(f"CREATE TABLE {table} ({columns})")
    db.conn.commit()


def test_tables_as_synapse_has_them_fit() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    assert _check(db) == compat.TableCheck(claims=True, recovery=True)


def test_a_missing_account_data_column_turns_off_claims_and_recovery_and_resets_recovery() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    db.run("", set_state_txn, STATE_RECOVERED_THROUGH, 7)
    _reshape(db, "room_account_data", "user_id TEXT, room_id TEXT, account_data_type TEXT, stream_id BIGINT")
    check = _check(db)
    assert (check.claims, check.recovery) == (False, False)
    assert check.problems == (
        "table room_account_data has no column content (found account_data_type, room_id, stream_id, "
        "user_id; needs user_id, room_id, account_data_type, stream_id, content)",
    )
    # A later start with fitting tables must not take this run's unclaimed changes for lost ones.
    assert db.run("", get_meta_txn, STATE_RECOVERED_THROUGH).result is None


def test_a_missing_tag_table_turns_off_recovery_only() -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    _reshape(db, "room_tags_revisions", "")
    check = _check(db)
    assert (check.claims, check.recovery) == (True, False)
    assert check.problems == ("no table room_tags_revisions (needs columns stream_id)",)


def test_with_a_table_shaped_differently_changes_are_still_recorded_and_recovery_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    db.run("", set_state_txn, STATE_RECOVERED_THROUGH, 1)
    db.conn.execute("INSERT INTO account_data_audit_meta (name, value) VALUES (?, '5')", (CLEAN_SHUTDOWN,))
    db.conn.commit()
    # The claims' readback query would fail on this table (no content column): every write would fail.
    _reshape(db, "account_data", "user_id TEXT, account_data_type TEXT, stream_id BIGINT, data TEXT")
    api = make_api(db)
    store = AuditStore(api)
    writer = OutboxWriter(api, store, on_written=lambda: None, recovery_fence=9)
    with caplog.at_level(logging.INFO, logger="synapse_account_data_audit"):
        writer.start()
        synapse_write(db, "@a:test.local", "m.t", '{"n":1}', 10, room="!r:test.local")
        defer.ensureDeferred(writer.record("@a:test.local", "!r:test.local", "m.t", '{"n":1}'))
    assert [user for _seq, user, _type in db.rows()] == ["@a:test.local"]
    assert list(db.conn.execute(f"SELECT * FROM {RECORDED_TABLE}")) == []
    assert "account_data_audit_recover" not in db.descs
    assert not store.recovery_done  # so no clean-shutdown marker either
    assert db.run("", get_meta_txn, CLEAN_SHUTDOWN).result is None
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "table account_data has no column content (found account_data_type, data, stream_id" in errors[0]
    assert "crash recovery is off and changes are recorded without claiming" in errors[0]


def test_the_version_is_the_installed_release() -> None:
    # Not synapse.__version__, which adds "(b=main,abc1234)" when Synapse runs inside a git checkout.
    assert compat.synapse_version() == importlib.metadata.version("matrix-synapse")
    assert compat.parse_version(compat.synapse_version()) is not None
