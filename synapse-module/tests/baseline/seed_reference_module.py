"""BASELINE ONLY, not part of the product: the behaviour of the example module in Synapse's
"Account data callbacks" documentation, written in our own words. Its callback builds the audit message
and sends it into the audit room inline, inside the user's request, with create_and_send_event_into_room.
The benchmark compares our host module against it; nothing else uses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from synapse.module_api import JsonDict, ModuleApi
from synapse.module_api.errors import ConfigError


@dataclass(frozen=True)
class InlineAuditConfig:
    audit_room: str
    sender: str


class InlineAuditModule:
    def __init__(self, config: InlineAuditConfig, api: ModuleApi) -> None:
        self._api = api
        self._config = config
        api.register_account_data_callbacks(on_account_data_updated=self._post_inline)

    @staticmethod
    def parse_config(config: dict[str, Any]) -> InlineAuditConfig:
        for key in ("audit_room", "sender"):
            if key not in config:
                raise ConfigError(f"'{key}' is required")
        return InlineAuditConfig(audit_room=config["audit_room"], sender=config["sender"])

    async def _post_inline(
        self, user_id: str, room_id: str | None, account_data_type: str, content: JsonDict
    ) -> None:
        content_raw = json.dumps(content)
        text = f"{user_id} has changed their account data for type {account_data_type} to: {content_raw}"
        if room_id is not None:
            text += f" (in room {room_id})"
        await self._api.create_and_send_event_into_room(
            {
                "room_id": self._config.audit_room,
                "sender": self._config.sender,
                "type": "m.room.message",
                "content": {"msgtype": "m.text", "body": text},
            }
        )
