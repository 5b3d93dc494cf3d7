"""Push rules (``m.push_rules``) from Synapse's tables: the account-data callback never sees them.

``push_rules_stream`` is append-only: one row per change of one rule (ops ADD, DELETE, ENABLE, DISABLE,
ACTIONS) with what the change set, so every change is recorded, one record each, in stream order. The record
is global account data of type ``m.push_rules`` whose content says which rule, what happened and what the
change set::

    {"scope": "global", "kind": "content", "rule_id": "cake", "change": "added",
     "rule": {"pattern": "cake*", "actions": ["notify"]}}

``change`` is ``added``, ``removed`` (no ``rule``), ``enabled`` / ``disabled`` (``rule``:
``{"enabled": …}``) or ``actions`` (``rule``: ``{"actions": …}``). An added rule shows what a client sees
of it: ``pattern`` for a content rule, nothing but the actions for room and sender rules (the rule ID names
the room or sender), ``conditions`` otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from synapse.storage.database import LoggingTransaction

from .records import SOURCE_PUSH_RULES, NewChange, encode_content

STATE_NAME = "poll:push_rules"
SOURCE = SOURCE_PUSH_RULES
PUSH_RULES_TYPE = "m.push_rules"

#: The columns read (checked at startup).
REQUIRED: dict[str, tuple[str, ...]] = {
    "push_rules_stream": ("stream_id", "user_id", "rule_id", "op", "conditions", "actions"),
}

_CHANGES = {
    "ADD": "added",
    "DELETE": "removed",
    "ENABLE": "enabled",
    "DISABLE": "disabled",
    "ACTIONS": "actions",
}

#: (stream_id, user_id, rule_id, op, conditions, actions): conditions and actions as Synapse's JSON text.
StreamRow = tuple[int, str, str, str, str | None, str | None]


def create_tables_txn(txn: LoggingTransaction) -> None:
    """Nothing to keep but the position: the stream holds every change."""


def max_position_txn(txn: LoggingTransaction) -> int:
    txn.execute("SELECT COALESCE(MAX(stream_id), 0) FROM push_rules_stream")
    row = txn.fetchone()
    return int(row[0]) if row is not None else 0


def read_txn(txn: LoggingTransaction, after: int, upto: int | None, limit: int) -> list[StreamRow]:
    """Changes after ``after`` (and at most ``upto``), oldest first (Synapse's index on stream_id)."""
    bound = "" if upto is None else " AND stream_id <= ?"
    args: tuple[int, ...] = (after,) if upto is None else (after, upto)
    txn.execute(
        "SELECT stream_id, user_id, rule_id, op, conditions, actions FROM push_rules_stream"
        f" WHERE stream_id > ?{bound} ORDER BY stream_id ASC LIMIT ?",
        (*args, limit),
    )
    return [
        (int(stream_id), str(user_id), str(rule_id), str(op), conditions, actions)
        for stream_id, user_id, rule_id, op, conditions, actions in txn
    ]


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # shown as Synapse stored it rather than not at all


def describe(row: StreamRow) -> dict[str, Any]:
    """The record's content for one stream row (see the module docstring)."""
    _, _, namespaced, op, conditions_text, actions_text = row
    # Synapse stores "global/<kind>/<rule ID>"; the rule ID itself may hold slashes (room and sender IDs).
    parts = namespaced.split("/", 2)
    scope, kind, rule_id = parts if len(parts) == 3 else ("", "", namespaced)
    change = _CHANGES.get(op, op.lower())
    content: dict[str, Any] = {"scope": scope, "kind": kind, "rule_id": rule_id, "change": change}
    conditions, actions = _json(conditions_text), _json(actions_text)
    if op == "ADD":
        rule: dict[str, Any] = {}
        if kind == "content" and isinstance(conditions, list) and len(conditions) == 1:
            only = conditions[0]
            pattern = only.get("pattern") if isinstance(only, dict) else None
            rule["pattern" if pattern is not None else "conditions"] = (
                pattern if pattern is not None else conditions
            )
        elif kind not in ("room", "sender"):
            rule["conditions"] = conditions
        rule["actions"] = actions
        content["rule"] = rule
    elif op in ("ENABLE", "DISABLE"):
        content["rule"] = {"enabled": op == "ENABLE"}
    elif op == "ACTIONS":
        content["rule"] = {"actions": actions}
    elif op != "DELETE":
        # An op this version does not know: what the row holds, so nothing is hidden.
        content["rule"] = {"conditions": conditions, "actions": actions}
    return content


def changes_txn(
    txn: LoggingTransaction, rows: list[StreamRow], now_ms: int, new_id: Callable[[], str]
) -> list[NewChange]:
    """One change per stream row, in stream order."""
    return [
        NewChange(
            change_id=new_id(),
            user_id=row[1],
            room_id=None,
            account_data_type=PUSH_RULES_TYPE,
            content=encode_content(describe(row)),
            created_ts=now_ms,
            source=SOURCE,
        )
        for row in rows
    ]
