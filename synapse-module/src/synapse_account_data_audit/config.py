"""The module's configuration: parsed and type-checked once, at Synapse startup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml
from synapse.module_api.errors import ConfigError

#: The path on the appservice's listener that takes change batches (see the project README).
CHANGES_PATH = "/_account_data_audit/v1/changes"

_KNOWN_KEYS = frozenset(
    {
        "appservice_url",
        "token",
        "registration_file",
        "delivery_instance",
        "batch_size",
        "batches_in_flight",
        "max_batch_bytes",
        "max_content_bytes",
        "backoff_initial_seconds",
        "backoff_max_seconds",
        "poll_interval_seconds",
        "checkpoint_interval_seconds",
        "stall_warning_seconds",
        "poll_tags_push_rules_seconds",
    }
)


@dataclass(frozen=True)
class AuditModuleConfig:
    #: Base URL of the appservice's listener, e.g. http://127.0.0.1:9993.
    appservice_url: str
    #: Bearer token presented to the appservice.
    token: str
    #: Name of the Synapse instance that delivers ("master" is the main process).
    delivery_instance: str = "master"
    #: Most changes in one request.
    batch_size: int = 100
    #: How much is sent before the first request is answered, in full batches (``batch_size`` rows and
    #: ``max_batch_bytes`` of weight each; see ``window``), in as many requests as it takes: the next changes
    #: are under way while the appservice posts the last ones, and one user's backlog of slow records does not
    #: keep other users' changes in the outbox. 1 sends one request at a time.
    batches_in_flight: int = 8
    #: Soft cap on one request's content bytes; a single larger change is still sent, alone.
    max_batch_bytes: int = 1024 * 1024
    #: A change whose content has more bytes than this is delivered without it, and posted quarantined with
    #: its size and keyed digest. Synapse takes values up to its request limit (about 50 MB), and reading one
    #: costs the appservice up to some 70 bytes of memory per byte; an event shows at most 64 KiB anyway.
    max_content_bytes: int = 1024 * 1024
    #: First wait after a failed delivery; doubles up to backoff_max_seconds, with jitter.
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 60.0
    #: Safety net: how often the outbox is checked without a wake-up (e.g. after a restart).
    poll_interval_seconds: float = 5.0
    #: A checkpoint record is written when no record was written for this long (see ``checkpoints``): the
    #: newest record in the audit room is then never much older, which ``verify --max-age`` checks.
    checkpoint_interval_seconds: float = 3600.0
    #: Every instance warns (rate-limited) when changes have waited this long and nothing was delivered for
    #: as long: a stopped delivery is then in every instance's log, not only the delivering one's.
    stall_warning_seconds: float = 300.0
    #: How often Synapse's tables are polled for room-tag and push-rule changes, which no callback reports
    #: (see ``poller``): at 1 s they are in the audit room within 2 s. An idle poll queries nothing.
    poll_tags_push_rules_seconds: float = 1.0

    @property
    def changes_url(self) -> str:
        return self.appservice_url.rstrip("/") + CHANGES_PATH


def _number(config: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"'{key}' must be a number, got {value!r}", (key,))
    if not low <= value <= high:
        raise ConfigError(f"'{key}' must be between {low} and {high}, got {value!r}", (key,))
    return float(value)


def _integer(config: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"'{key}' must be an integer, got {value!r}", (key,))
    if not low <= value <= high:
        raise ConfigError(f"'{key}' must be between {low} and {high}, got {value!r}", (key,))
    return value


def _read_hs_token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            registration = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"'registration_file': cannot read {path}: {e}", ("registration_file",)) from e
    token = registration.get("hs_token") if isinstance(registration, dict) else None
    if not isinstance(token, str) or not token:
        raise ConfigError(f"'registration_file': {path} has no hs_token", ("registration_file",))
    return token


def parse_config(config: Any) -> AuditModuleConfig:
    if not isinstance(config, dict):
        raise ConfigError("The module config must be a mapping")
    unknown = sorted(set(config) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"Unknown keys: {', '.join(unknown)}", (unknown[0],))

    url = config.get("appservice_url")
    if url is None:
        raise ConfigError("'appservice_url' is required", ("appservice_url",))
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ConfigError(
            f"'appservice_url' must be an http:// or https:// URL, got {url!r}", ("appservice_url",)
        )

    token = config.get("token")
    registration_file = config.get("registration_file")
    if (token is None) == (registration_file is None):
        raise ConfigError("Exactly one of 'token' and 'registration_file' is required", ("token",))
    if token is not None and (not isinstance(token, str) or not token):
        raise ConfigError("'token' must be a non-empty string", ("token",))
    if registration_file is not None:
        if not isinstance(registration_file, str):
            raise ConfigError("'registration_file' must be a path", ("registration_file",))
        token = _read_hs_token(registration_file)
    assert isinstance(token, str)

    instance = config.get("delivery_instance", "master")
    if not isinstance(instance, str) or not instance:
        raise ConfigError("'delivery_instance' must be an instance name", ("delivery_instance",))

    backoff_initial = _number(config, "backoff_initial_seconds", 0.5, 0.001, 3600)
    backoff_max = _number(config, "backoff_max_seconds", 60.0, 0.001, 86400)
    if backoff_max < backoff_initial:
        raise ConfigError(
            "'backoff_max_seconds' must not be smaller than 'backoff_initial_seconds'",
            ("backoff_max_seconds",),
        )
    return AuditModuleConfig(
        appservice_url=url,
        token=token,
        delivery_instance=instance,
        batch_size=_integer(config, "batch_size", 100, 1, 10_000),
        batches_in_flight=_integer(config, "batches_in_flight", 8, 1, 64),
        max_batch_bytes=_integer(config, "max_batch_bytes", 1024 * 1024, 1024, 1024 * 1024 * 1024),
        max_content_bytes=_integer(config, "max_content_bytes", 1024 * 1024, 1024, 1024 * 1024 * 1024),
        backoff_initial_seconds=backoff_initial,
        backoff_max_seconds=backoff_max,
        poll_interval_seconds=_number(config, "poll_interval_seconds", 5.0, 0.05, 3600),
        # At least a second (tests use 2), at most a week: a longer silence tells an auditor nothing.
        checkpoint_interval_seconds=_number(config, "checkpoint_interval_seconds", 3600.0, 1, 7 * 86400),
        stall_warning_seconds=_number(config, "stall_warning_seconds", 300.0, 1, 7 * 86400),
        poll_tags_push_rules_seconds=_number(config, "poll_tags_push_rules_seconds", 1.0, 0.05, 3600),
    )
