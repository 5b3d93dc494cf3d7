"""What the appservice's answers say (see README, "Delivery protocol"): read defensively, as a body that is
not what the protocol says must never stop delivery."""

from __future__ import annotations

import json
from typing import Any

from synapse.api.errors import HttpResponseException


def error_body(error: HttpResponseException) -> dict[str, Any]:
    try:
        body = json.loads(error.response)
    except (ValueError, TypeError):
        return {}
    return body if isinstance(body, dict) else {}


#: What the appservice answers a wrong or missing token with (see README, "Delivery protocol").
TOKEN_ERRORS = ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN")


def is_token_mismatch(error: HttpResponseException) -> bool:
    return error.code in (401, 403) and error_body(error).get("errcode") in TOKEN_ERRORS


def is_pending(error: HttpResponseException) -> bool:
    """The appservice is still posting the batch (answered before the request would time out)."""
    return error.code == 503 and error_body(error).get("pending") is True


def processed_through(error: HttpResponseException) -> int | None:
    """The appservice reports how far it got in a batch it could not finish."""
    value = error_body(error).get("processed_through")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: The response had no (valid) posted head: keep the one stored.
NO_HEAD = object()


def posted_head(body: Any) -> Any:
    """The appservice's posted head from a response body: {"seq", "hash"}, None, or NO_HEAD."""
    if not isinstance(body, dict) or "posted_head" not in body:
        return NO_HEAD
    head = body["posted_head"]
    if head is None:
        return None
    if isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str):
        return {"seq": head["seq"], "hash": head["hash"]}
    return NO_HEAD
