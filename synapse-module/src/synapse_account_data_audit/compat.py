"""Which Synapse the module runs on, checked at startup (see README, "Install (admins)").

Supported: Synapse ``MIN_SYNAPSE`` (1.141.0) through the ``NEWEST_TESTED`` release series (1.163.x); CI
runs the whole suite on the newest and an e2e smoke on the oldest. What sets the floor:

- ``ModuleApi.run_as_background_process`` (delivery and the shutdown flush run through it) came in 1.136.0;
  everything else the module calls (the account-data and deactivation callbacks, ``run_db_interaction``,
  ``looping_background_call(run_on_all_instances=...)``, ``delayed_background_call``, ``worker_name``) and the
  columns it reads are older than that.
- The appservice sends each audit event with its own device (``?user_id=...&device_id=...``), which is what
  makes transaction IDs survive a homeserver restart. Synapse takes the stable ``device_id`` parameter on
  appservice requests from 1.141.0; before that only ``org.matrix.msc3202.device_id``, behind an experimental
  flag. Synapse 1.136-1.140 therefore run the host module fully but lose exactly-once delivery across a
  homeserver restart (the appservice detects it and says so): outside the range.

Three checks, each saying in one log line what it found and what it needs, and each turning off only what
depends on it:

- the module API (``missing_module_api``): without it the module cannot record or deliver at all, so the
  module refuses to load (Synapse does not start) rather than run without an audit trail;
- the version (``version_message``): a log line, nothing turned off by itself (the other checks decide);
- Synapse's tables (``check_tables_txn``), read by the writer's claims and by crash recovery: with a column
  missing, both are off (``TableCheck``) and changes are still recorded and delivered.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import re
from dataclasses import dataclass

from synapse.storage.database import LoggingTransaction

from .claims import STATE_RECOVERED_THROUGH
from .dbutil import table_columns_txn
from .meta import META_TABLE
from .recovery import CLEAN_SHUTDOWN

logger = logging.getLogger(__name__)

Version = tuple[int, int, int]

#: The oldest Synapse supported (see the module docstring); the `dependencies` floor in pyproject.toml.
MIN_SYNAPSE: Version = (1, 141, 0)
#: The newest Synapse tested (the dev venv's pin); later patch releases of its series count as tested.
NEWEST_TESTED: Version = (1, 163, 2)

#: The ModuleApi methods the module calls (and keyword arguments it passes), with the Synapse release that has
#: them all. A method missing means a Synapse older than the floor.
REQUIRED_API: dict[str, tuple[str, ...]] = {
    "register_account_data_callbacks": ("on_account_data_updated",),
    "register_third_party_rules_callbacks": ("on_user_deactivation_status_changed",),
    "run_db_interaction": (),
    "looping_background_call": ("run_on_all_instances", "desc"),
    "delayed_background_call": ("desc",),
    "run_as_background_process": (),
    "sleep": (),
    "get_current_time_msec": (),
    "http_client": (),
    "worker_name": (),
}
#: The first Synapse with all of REQUIRED_API (``run_as_background_process`` is the newest of them).
MODULE_API_SINCE = "1.136.0"

#: The columns of Synapse's tables that the module reads: the account-data tables by the writer's claims and
#: by crash recovery, the room-tag revisions by recovery alone.
CLAIM_TABLES: dict[str, tuple[str, ...]] = {
    "account_data": ("user_id", "account_data_type", "stream_id", "content"),
    "room_account_data": ("user_id", "room_id", "account_data_type", "stream_id", "content"),
}
RECOVERY_TABLES: dict[str, tuple[str, ...]] = {"room_tags_revisions": ("stream_id",)}


def _text(version: Version) -> str:
    return ".".join(str(part) for part in version)


SUPPORTED = f"{_text(MIN_SYNAPSE)} to {NEWEST_TESTED[0]}.{NEWEST_TESTED[1]}.x"


def parse_version(text: str) -> Version | None:
    """``1.163.2``, ``1.164.0rc1``, ``1.141.0 (b=main,2494879)`` (a git checkout) → (major, minor, patch)."""
    match = re.match(r"\s*(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3])


def version_message(found: str) -> tuple[int, str]:
    """The startup log line about Synapse's version: (logging level, message)."""
    version = parse_version(found)
    if version is None:
        return logging.WARNING, (
            f"Account-data audit: cannot tell Synapse's version from {found!r} (supported: {SUPPORTED}); "
            "the module API and Synapse's tables are checked instead"
        )
    if version < MIN_SYNAPSE:
        return logging.WARNING, (
            f"Account-data audit: Synapse {found} is older than {_text(MIN_SYNAPSE)}, the oldest supported "
            f"(supported: {SUPPORTED}). Synapse before 1.141.0 ignores the device_id of appservice requests, "
            "so the appservice sends without durable transaction IDs (a message sent just before a "
            "homeserver restart can be posted twice; the appservice's log says so too); the host module runs"
        )
    if version[:2] > NEWEST_TESTED[:2]:
        return logging.WARNING, (
            f"Account-data audit: Synapse {found} is newer than the newest tested, {_text(NEWEST_TESTED)} "
            f"(supported: {SUPPORTED}); the module API and Synapse's tables are checked, and anything that "
            "does not fit is reported and turned off"
        )
    return logging.INFO, f"Account-data audit: Synapse {found} is supported ({SUPPORTED})"


def missing_module_api(api_class: type) -> list[str]:
    """What of REQUIRED_API the ModuleApi class lacks (``name`` or ``name(keyword=)``); empty if nothing."""
    missing: list[str] = []
    for name, keywords in REQUIRED_API.items():
        member = inspect.getattr_static(api_class, name, None)
        if member is None:
            missing.append(name)
            continue
        if not keywords:
            continue
        try:
            parameters = inspect.signature(member).parameters
        except (TypeError, ValueError):
            continue  # not introspectable (a C function): it exists, and a call says the rest
        missing.extend(f"{name}({keyword}=)" for keyword in keywords if keyword not in parameters)
    return missing


def check_synapse(found: str, api_class: type) -> None:
    """At module load: logs the version line; raises if the module API lacks what the module calls."""
    level, message = version_message(found)
    logger.log(level, "%s", message)
    missing = missing_module_api(api_class)
    if missing:
        raise RuntimeError(
            f"The account-data audit module cannot run on Synapse {found}: its module API has no "
            f"{', '.join(missing)} (needs Synapse {MODULE_API_SINCE} or later; supported: {SUPPORTED})"
        )


@dataclass(frozen=True)
class TableCheck:
    """Which parts that read Synapse's tables can run (see the module docstring)."""

    #: The writer's claims (and with them crash recovery): the account-data tables fit.
    claims: bool
    #: Crash recovery: the claims and the room-tag revisions fit.
    recovery: bool
    #: One line per table that does not fit: what was found, what is needed.
    problems: tuple[str, ...] = ()


def _problems(txn: LoggingTransaction, tables: dict[str, tuple[str, ...]]) -> list[str]:
    problems: list[str] = []
    for table, needed in tables.items():
        found = table_columns_txn(txn, table)
        if not found:
            problems.append(f"no table {table} (needs columns {', '.join(needed)})")
            continue
        missing = [column for column in needed if column not in found]
        if missing:
            problems.append(
                f"table {table} has no column {', '.join(missing)} "
                f"(found {', '.join(sorted(found))}; needs {', '.join(needed)})"
            )
    return problems


def check_tables_txn(txn: LoggingTransaction) -> TableCheck:
    """Checks the columns the module reads. Where recovery cannot run, its progress is reset, so that a later
    start with fitting tables begins afresh (audits from then on) instead of taking the changes recorded
    without claims meanwhile for changes the outbox never got, and recording them a second time."""
    claim_problems = _problems(txn, CLAIM_TABLES)
    problems = claim_problems + _problems(txn, RECOVERY_TABLES)
    check = TableCheck(claims=not claim_problems, recovery=not problems, problems=tuple(problems))
    if not check.recovery:
        txn.execute(
            f"DELETE FROM {META_TABLE} WHERE name IN (?, ?)", (STATE_RECOVERED_THROUGH, CLEAN_SHUTDOWN)
        )
    return check


def report_tables(check: TableCheck, found: str) -> None:
    """The one log line for tables that do not fit (nothing when they all do)."""
    if check.recovery:
        return
    off = (
        "crash recovery is off and changes are recorded without claiming their stream positions"
        if not check.claims
        else "crash recovery is off"
    )
    logger.error(
        "Account-data audit: Synapse %s's database is shaped differently from what the module reads: %s. "
        "So %s; changes are still recorded and delivered, but a hard crash can lose the few not yet written "
        "to the audit outbox (supported: %s).",
        found,
        "; ".join(check.problems),
        off,
        SUPPORTED,
    )


def synapse_version() -> str:
    """The installed release; Synapse's own ``__version__`` adds git details when run from a checkout."""
    try:
        return importlib.metadata.version("matrix-synapse")
    except importlib.metadata.PackageNotFoundError:
        import synapse

        return str(synapse.__version__)
