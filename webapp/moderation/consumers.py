"""The moderators' live feed: `/ws/moderation/`, staff only (docs/moderation.md).

Every open dashboard joins the `moderators` group; the moderation services
publish to it after commit (`webapp.moderation.live`), and this consumer
forwards each item to its page as `{"type": "moderation.item", "item": {...}}`.
Nothing is read from the client.
"""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from webapp.chat.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from webapp.moderation import live


class ModeratorsConsumer(AsyncWebsocketConsumer):
    joined = False

    async def connect(self) -> None:
        # Accept first, then close with a code: a close before accepting reaches
        # the browser as a bare HTTP 403 and the reason is lost.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not user.is_staff:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(live.GROUP, self.channel_name)
        self.joined = True

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(live.GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The feed is one-way: whatever a client sends is ignored."""

    async def moderation_item(self, message: dict[str, Any]) -> None:
        """A new event or report, or another moderator's action, from `live.notify_moderators`."""
        await self.send(text_data=json.dumps({"type": "moderation.item", "item": message["event"]}))
