"""Exceptions as the module logs them: never with an account-data value in them.

A database error's text can carry the row it failed on (PostgreSQL's ``DETAIL:  Failing row contains
(...)``, which psycopg2 puts in the exception's message, would hold a change's content), so the module logs
an exception's type and the first line of its message only, cut short. (Synapse's own DEBUG logging of SQL
values, ``synapse.storage.SQL``, is Synapse's: it logs every account-data value Synapse itself writes too.)
"""

from __future__ import annotations

import traceback

#: Longest message kept: enough for any error's summary line.
MAX_CHARS = 300


def describe(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > MAX_CHARS:
        first = first[:MAX_CHARS] + "…"
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def describe_with_trace(error: BaseException) -> str:
    """``describe`` and where it was raised (the frames name code, never values)."""
    return describe(error) + "\n" + "".join(traceback.format_tb(error.__traceback__)).rstrip()
