"""Posts a batch to the appservice without any log line holding the batch.

Synapse's ``SimpleHttpClient.post_json_get_json`` logs every request body at DEBUG (``HTTP POST <body> ->
<uri>`` on the ``synapse.http.client`` logger, in Synapse 1.163): an admin who turns that logger up to debug
something else would write every account-data value the module delivers, secrets included, into Synapse's
log. The client's lower-level ``request`` (which ``post_json_get_json`` calls) logs only the method, the
redacted URI and the status code, so the module encodes, posts and decodes here itself, exactly as
``post_json_get_json`` does otherwise: the same JSON encoding and headers, the parsed body of a 2xx answer,
``HttpResponseException`` (with the answer's body) for any other. No logging filter: one on Synapse's logger
would also hide its other requests' debug lines, and would depend on the message staying the same.
"""

from __future__ import annotations

import json
from typing import Any

from canonicaljson import encode_canonical_json
from synapse.api.errors import HttpResponseException
from synapse.http.client import SimpleHttpClient
from synapse.module_api import make_deferred_yieldable
from twisted.web.client import readBody
from twisted.web.http_headers import Headers


async def post_json(client: SimpleHttpClient, uri: str, body: Any, headers: dict[bytes, list[bytes]]) -> Any:
    """POSTs ``body`` as JSON; returns the answer's JSON (2xx) or raises ``HttpResponseException``."""
    data = encode_canonical_json(body)
    request_headers = Headers(
        {b"Content-Type": [b"application/json"], b"Accept": [b"application/json"], **headers}
    )
    response = await client.request("POST", uri, data=data, headers=request_headers)
    answer = await make_deferred_yieldable(readBody(response))
    if 200 <= response.code < 300:
        return json.loads(answer.decode("utf-8"))
    raise HttpResponseException(response.code, response.phrase.decode("ascii", errors="replace"), answer)
