"""Where crash recovery runs: only on the one account-data stream writer, if its position is known."""

from unittest.mock import Mock

import pytest

from synapse_account_data_audit import recovery_fence

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
