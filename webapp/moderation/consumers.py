"""The moderators' live feed: `/ws/moderation/`, moderators only (docs/moderation.md).

Every open dashboard joins the `moderators` group; the moderation services
publish to it after commit (`webapp.moderation.live`), and this consumer
forwards each item to its page as `{"type": "moderation.item", "item": {...}}`.
Nothing is read from the client. It also joins the person's own group, so a
deactivation closes it at once; a moderator demoted since connecting is
closed at the next item, which they no longer get.
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from webapp.accounts.access import can_moderate, forget_role
from webapp.chat import live as chat_live
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
        if not await database_sync_to_async(can_moderate)(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user_group = chat_live.user_group_name(user.pk)
        await self.channel_layer.group_add(live.GROUP, self.channel_name)
        await self.channel_layer.group_add(self.user_group, self.channel_name)
        self.joined = True

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(live.GROUP, self.channel_name)
            await self.channel_layer.group_discard(self.user_group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The feed is one-way: whatever a client sends is ignored."""

    async def moderation_item(self, message: dict[str, Any]) -> None:
        """A new event or report, or another moderator's action, from `live.notify_moderators`."""
        if not await database_sync_to_async(self._still_moderator)():
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.send(text_data=json.dumps({"type": "moderation.item", "item": message["event"]}))

    async def chat_session_end(self, message: dict[str, Any]) -> None:
        """The person was banned or deactivated (`chat.live.sessions_end`): closed as if logged out."""
        await self.close(code=CLOSE_UNAUTHENTICATED)

    def _still_moderator(self) -> bool:
        # Read afresh: the role may have changed since the socket connected.
        user = self.scope["user"]
        user.refresh_from_db(fields=["is_active", "is_staff", "is_superuser"])
        forget_role(user)
        return can_moderate(user)
