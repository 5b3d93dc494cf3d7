from pathlib import Path
from typing import Any

import pytest
from synapse.module_api.errors import ConfigError

from synapse_account_data_audit import AccountDataAuditModule
from synapse_account_data_audit.config import AuditModuleConfig

BASE: dict[str, Any] = {"appservice_url": "http://127.0.0.1:9993", "token": "secret"}


def parse(**overrides: Any) -> AuditModuleConfig:
    config = {**BASE, **overrides}
    return AccountDataAuditModule.parse_config({k: v for k, v in config.items() if v is not None})


def test_defaults() -> None:
    config = parse()
    assert config.token == "secret"
    assert config.delivery_instance == "master"
    assert config.batch_size == 100
    assert config.batches_in_flight == 8
    assert config.checkpoint_interval_seconds == 3600
    assert parse(checkpoint_interval_seconds=2).checkpoint_interval_seconds == 2.0
    assert config.changes_url == "http://127.0.0.1:9993/_account_data_audit/v1/changes"


def test_config_is_frozen() -> None:
    config = parse()
    with pytest.raises(AttributeError):
        config.batch_size = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message", "path"),
    [
        ({"appservice_url": None}, "'appservice_url' is required", "appservice_url"),
        ({"appservice_url": "ftp://x"}, "'appservice_url' must be an http", "appservice_url"),
        ({"appservice_url": 5}, "'appservice_url' must be an http", "appservice_url"),
        ({"token": None}, "Exactly one of 'token' and 'registration_file'", "token"),
        ({"registration_file": "/x"}, "Exactly one of 'token' and 'registration_file'", "token"),
        ({"token": ""}, "'token' must be a non-empty string", "token"),
        ({"batch_size": 0}, "'batch_size' must be between 1 and 10000", "batch_size"),
        ({"batch_size": True}, "'batch_size' must be an integer", "batch_size"),
        ({"batch_size": "10"}, "'batch_size' must be an integer", "batch_size"),
        ({"batches_in_flight": 0}, "'batches_in_flight' must be between 1 and 64", "batches_in_flight"),
        ({"batches_in_flight": 2.5}, "'batches_in_flight' must be an integer", "batches_in_flight"),
        ({"max_batch_bytes": 10}, "'max_batch_bytes' must be between", "max_batch_bytes"),
        (
            {"backoff_initial_seconds": "fast"},
            "'backoff_initial_seconds' must be a number",
            "backoff_initial_seconds",
        ),
        (
            {"backoff_max_seconds": 0.1, "backoff_initial_seconds": 1},
            "must not be smaller",
            "backoff_max_seconds",
        ),
        ({"poll_interval_seconds": 0}, "'poll_interval_seconds' must be between", "poll_interval_seconds"),
        (
            {"checkpoint_interval_seconds": 0.5},
            "'checkpoint_interval_seconds' must be between 1 and 604800",
            "checkpoint_interval_seconds",
        ),
        (
            {"checkpoint_interval_seconds": "1h"},
            "'checkpoint_interval_seconds' must be a number",
            "checkpoint_interval_seconds",
        ),
        ({"delivery_instance": ""}, "'delivery_instance' must be an instance name", "delivery_instance"),
        ({"batchsize": 10}, "Unknown keys: batchsize", "batchsize"),
    ],
)
def test_errors_name_the_key(overrides: dict[str, Any], message: str, path: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(**overrides)
    assert message in raised.value.msg
    assert raised.value.path == [path] or tuple(raised.value.path or ()) == (path,)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        AccountDataAuditModule.parse_config([])  # type: ignore[arg-type]


def test_token_from_registration_file(tmp_path: Path) -> None:
    reg = tmp_path / "registration.yaml"
    reg.write_text("id: audit\nhs_token: from-file\nas_token: other\n")
    config = AccountDataAuditModule.parse_config(
        {"appservice_url": "http://localhost:1", "registration_file": str(reg)}
    )
    assert config.token == "from-file"


def test_registration_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'registration_file': cannot read"):
        parse(token=None, registration_file=str(tmp_path / "missing.yaml"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("id: audit\n")
    with pytest.raises(ConfigError, match="has no hs_token"):
        parse(token=None, registration_file=str(empty))
