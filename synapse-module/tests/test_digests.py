"""Digest mode: groups are decided once, recorded in the outbox, and never straddle a batch."""

from synapse_account_data_audit import outbox
from synapse_account_data_audit.digests import DigestPolicy, fetch_for_delivery_txn, plan_groups
from synapse_account_data_audit.outbox import KIND_GAP, NewChange
from synapse_account_data_audit.store import create_tables_txn, record_txn

from .fakes import FakeDatabase

POLICY = DigestPolicy(min_backlog=5, max_changes=3, max_bytes=1000)


def setup(n: int, gap_at: int | None = None) -> FakeDatabase:
    db = FakeDatabase()
    db.run("", create_tables_txn)
    changes = [
        NewChange(
            f"c{i}",
            "@u:test.local",
            None,
            "m.t",
            f'{{"i":{i}}}',
            i,
            kind=KIND_GAP if i == gap_at else "change",
        )
        for i in range(1, n + 1)
    ]
    db.run("", record_txn, b"k", changes, False, True)
    return db


def fetch(
    db: FakeDatabase, limit: int, after: int = 0, policy: DigestPolicy | None = POLICY
) -> list[outbox.OutboxRow]:
    rows = db.run("", fetch_for_delivery_txn, limit, 1 << 20, after, policy).result
    assert isinstance(rows, list)
    return rows


def groups(rows: list[outbox.OutboxRow]) -> list[int | None]:
    return [row.digest_group for row in rows]


def test_consecutive_changes_are_grouped_up_to_the_limits_and_a_notice_ends_a_group() -> None:
    db = setup(9, gap_at=4)
    rows = fetch(db, 9)
    # 1-3 (max 3 changes), the gap notice alone (0), 5-7, then 8-9.
    assert groups(rows) == [1, 1, 1, 0, 5, 5, 5, 8, 8]
    assert "digest_group" not in rows[3].to_wire()
    assert rows[0].to_wire()["digest_group"] == 1
    assert plan_groups(rows, POLICY) == []  # recorded: nothing left to group


def test_groups_are_recorded_and_kept_by_every_later_fetch() -> None:
    db = setup(9)
    first = groups(fetch(db, 9))
    assert groups(fetch(db, 9, policy=DigestPolicy(0, 9, 1000))) == first  # another policy changes nothing
    assert groups(fetch(db, 9, policy=None)) == first


def test_no_groups_without_a_backlog() -> None:
    assert groups(fetch(setup(5), 5)) == [0] * 5  # 5 waiting, min_backlog 5: each goes alone


def test_a_row_once_sent_alone_is_never_grouped_later() -> None:
    db = setup(9)
    assert groups(fetch(db, 4, policy=None)) == [0] * 4  # sent without digests (maybe posted)
    assert groups(fetch(db, 9)) == [0, 0, 0, 0, 5, 5, 5, 8, 8]


def test_a_batch_never_ends_inside_a_group() -> None:
    db = setup(9)
    fetch(db, 9)  # groups 1-3, 4-6, 7-9
    assert [r.seq for r in fetch(db, 5)] == [1, 2, 3]  # 4-6 does not fit whole
    assert [r.seq for r in fetch(db, 2, after=3)] == [4, 5, 6]  # a group larger than the batch goes whole


def test_the_delivery_loop_stores_the_appservices_digest_settings_to_use_after_a_restart() -> None:
    from unittest.mock import Mock

    from twisted.internet import defer

    from synapse_account_data_audit import AccountDataAuditModule, AuditModuleConfig

    from .fakes import make_api

    db = FakeDatabase()
    api = make_api(db)
    settings = {"min_backlog": 1, "max_changes": 5, "max_bytes": 1000}
    api.http_client.post_json_get_json.return_value = {"acknowledged_through": None, "digest": settings}
    module = AccountDataAuditModule(
        AuditModuleConfig(appservice_url="http://as.test", token="t"), api, Mock()
    )
    defer.ensureDeferred(module.on_account_data_updated("@u:test.local", None, "m.t", {}))
    stored = db.conn.execute(
        "SELECT value FROM account_data_audit_meta WHERE name = 'digest_settings'"
    ).fetchone()
    assert stored is not None and '"max_changes":5' in stored[0]
