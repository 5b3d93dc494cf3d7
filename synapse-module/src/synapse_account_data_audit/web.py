"""The host module's two endpoints on Synapse, served by every instance (``ModuleApi.register_web_resource``):

- ``POST /_synapse/client/account_data_audit/v1/wake``: the appservice calls it when it starts, so delivery
  resumes at once instead of after the backoff (see ``wake``);
- ``GET /_synapse/client/account_data_audit/v1/health``: the outbox as this instance reads it from the
  database (see ``health_stats``), the same on every instance.

Both take the token the host module presents to the appservice (``token``, or the ``registration_file``'s
hs_token) as a bearer token: the appservice has it as ``ingest.token`` (or its registration's hs_token). A
wrong one is answered 403 M_UNKNOWN_TOKEN and logged as a token mismatch naming both config keys.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from synapse.api.errors import Codes, SynapseError
from synapse.module_api import DirectServeJsonResource

logger = logging.getLogger(__name__)

PREFIX = "/_synapse/client/account_data_audit/v1"
WAKE_PATH = PREFIX + "/wake"
HEALTH_PATH = PREFIX + "/health"

TOKEN_MISMATCH = (
    "token mismatch: the appservice's token (its ingest.token, or its registration's hs_token) is not this"
    " host module's token (its `token` config, or the hs_token of its `registration_file`)"
)


def check_bearer(request: Any, token: str) -> None:
    """Raises the Matrix error for a missing or wrong bearer token (compared in constant time)."""
    header = request.requestHeaders.getRawHeaders(b"Authorization") or []
    value = header[0].decode("utf-8", errors="replace") if header else ""
    if not value.startswith("Bearer "):
        raise SynapseError(401, "Missing 'Authorization: Bearer <token>' header", Codes.MISSING_TOKEN)
    if not hmac.compare_digest(value[len("Bearer ") :].encode(), token.encode()):
        logger.warning("Account-data audit: %s (request to %s)", TOKEN_MISMATCH, request.path.decode())
        raise SynapseError(403, TOKEN_MISMATCH, Codes.UNKNOWN_TOKEN)


class WakeResource(DirectServeJsonResource):
    def __init__(self, token: str, wake: Callable[[], Awaitable[None]], info: dict[str, Any]) -> None:
        super().__init__()
        self._token = token
        self._wake = wake
        self._info = info

    async def _async_render_POST(self, request: Any) -> tuple[int, dict[str, Any]]:
        check_bearer(request, self._token)
        await self._wake()
        # The appservice learns the checkpoint interval at once (it judges a silence by it, see README).
        return 200, {"woken": True, **self._info}


class HealthResource(DirectServeJsonResource):
    def __init__(self, token: str, describe: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self._token = token
        self._describe = describe

    async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
        check_bearer(request, self._token)
        return 200, self._describe()
