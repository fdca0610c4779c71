"""The websocket of one conversation: `/ws/conversations/<uuid>/` (docs/protocol.md).

Thin by design: parse a client event, call one service, send what it
returns. The reply's tokens arrive from the worker through the channel-layer
group and are forwarded as they come.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from webapp import metrics
from webapp.chat import branches, events, live, services, tree
from webapp.chat.models import Conversation
from webapp.chat.selectors import ConversationForbidden, ConversationNotFound, access_conversation, live_reply
from webapp.chat.services import ChatInputError

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
BANNED_MESSAGE = "A moderator has banned this account; the chat is closed."

# The sockets' database and Redis work runs in this pool. Channels' default
# (thread-sensitive) runs every socket's calls of a Daphne process on one
# thread, so a burst of sends was checked and stored one after another and
# the last waited seconds for its first token. One socket still runs one
# handler at a time, so its own events keep their order. SOCKET_THREADS=0
# keeps Channels' one thread (the in-process tests' in-memory SQLite, shared
# between threads, locks whole tables).
_POOL = (
    ThreadPoolExecutor(max_workers=settings.SOCKET_THREADS, thread_name_prefix="socket")
    if settings.SOCKET_THREADS
    else None
)


def in_pool(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` made awaitable, run in the sockets' pool with Django's connection handling."""
    if _POOL is None:
        return database_sync_to_async(func)
    return database_sync_to_async(func, thread_sensitive=False, executor=_POOL)


def max_frame_bytes() -> int:
    """The largest frame a valid client event needs.

    The longest text an event carries (a message, a system prompt) with every
    character escaped as a surrogate pair (`\\ud83d\\ude00`: 12 bytes for one
    character), and room for the rest of the event. Counted in characters, a
    frame can only be shorter.
    """
    return max(settings.MAX_MESSAGE_CHARS, settings.MAX_SYSTEM_PROMPT_CHARS) * 12 + 4096


class ConversationConsumer(AsyncWebsocketConsumer):
    conversation: Conversation
    group: str

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch first closes stale database connections of its
        # one sync thread, a hop to that thread for every message: every token
        # event a socket forwards. This consumer touches the database only
        # through `in_pool`, whose calls close their own thread's stale
        # connections before and after, so the hop bought nothing.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        # Accept first, then close with a code: a close before accepting
        # reaches the browser as a bare HTTP 403 and the reason is lost.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            metrics.socket_connected(str(CLOSE_UNAUTHENTICATED))
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            self.conversation = await in_pool(access_conversation)(
                user, self.scope["url_route"]["kwargs"]["conversation_id"]
            )
        except ConversationNotFound:
            metrics.socket_connected(str(CLOSE_NOT_FOUND))
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except ConversationForbidden:
            metrics.socket_connected(str(CLOSE_FORBIDDEN))
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = live.group_name(self.conversation.id)
        metrics.socket_connected("open")  # from here on, disconnect() counts it closed
        self.user_group = live.user_group_name(user.pk)
        # Highest seq already sent, per reply: a token at or below it is a
        # duplicate of what the snapshot carried.
        self.sent_seq: dict[str, int] = {}
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(self.user_group, self.channel_name)
        await self._send_snapshot()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            metrics.socket_closed()
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.channel_layer.group_discard(self.user_group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            payload = self._parse(text_data)
            with metrics.socket_event(payload["type"]):  # a refused event is timed as an "error"
                await self._dispatch(payload)
        except ChatInputError as error:
            await self._send_event(events.error_event(error.code, error.message, error.retry_after))

    def _parse(self, text_data: str | None) -> dict[str, Any]:
        if text_data is None:
            raise ChatInputError("invalid_frame", "Send JSON text frames, not binary.")
        if len(text_data) > max_frame_bytes():
            # Daphne refuses larger frames before reading them (webapp/daphne_server.py);
            # this holds under any other server, and for fragmented messages.
            raise ChatInputError("frame_too_large", "The frame is too large.")
        try:
            payload = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise ChatInputError("invalid_json", "The frame is not valid JSON.") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            raise ChatInputError("invalid_event", 'An event is a JSON object with a string "type".')
        return payload

    async def _dispatch(self, payload: dict[str, Any]) -> None:
        handler = {
            "send": self._on_send,
            "stop": self._on_stop,
            "regenerate": self._on_regenerate,
            "edit": self._on_edit,
            "settings": self._on_settings,
            "resume": self._on_resume,
            "switch": self._on_switch,
            "sync": self._on_sync,
        }.get(payload["type"])
        if handler is None:
            raise ChatInputError("unknown_type", f"Unknown event type {payload['type'][:40]!r}.")
        await handler(payload)

    async def _on_send(self, payload: dict[str, Any]) -> None:
        # One hop to the thread pool for check and write: each hop costs a
        # scheduling round trip on the first-token path.
        await in_pool(self._send)(payload)

    def _send(self, payload: dict[str, Any]) -> None:
        # The parameters are checked in reply_send, against the limits read with its other checks.
        content = services.check_content(payload.get("content"))
        services.reply_send(conversation=self.conversation, content=content, raw_params=payload.get("params"))

    async def _on_stop(self, payload: dict[str, Any]) -> None:
        await in_pool(services.reply_stop)(conversation=self.conversation)

    async def _on_regenerate(self, payload: dict[str, Any]) -> None:
        await in_pool(branches.reply_regenerate)(
            conversation=self.conversation,
            raw_params=payload.get("params"),
            message_id=payload.get("message_id"),
        )

    async def _on_edit(self, payload: dict[str, Any]) -> None:
        await in_pool(branches.reply_edit)(
            conversation=self.conversation,
            message_id=payload.get("message_id"),
            content=payload.get("content"),
            raw_params=payload.get("params"),
        )

    async def _on_settings(self, payload: dict[str, Any]) -> None:
        # Read afresh: another tab may have changed them since this socket connected.
        await in_pool(self.conversation.refresh_from_db)()
        chat_settings = await in_pool(services.check_settings)(
            conversation=self.conversation, raw_settings=payload.get("settings")
        )
        await in_pool(services.conversation_configure)(
            conversation=self.conversation, chat_settings=chat_settings
        )

    async def _on_resume(self, payload: dict[str, Any]) -> None:
        # A client back from a drop asks after the reply it was watching: if it
        # ended meanwhile, it missed the `done`; if it is live, the snapshot
        # on connect already caught it up.
        reply = await in_pool(services.check_resume)(
            conversation=self.conversation, message_id=payload.get("message_id")
        )
        if not reply.is_live:
            await self._send_event(events.done_event(reply))

    async def _on_switch(self, payload: dict[str, Any]) -> None:
        # Every socket on the conversation, this one too, hears the new path as a `path` event.
        await in_pool(branches.conversation_switch)(
            conversation=self.conversation, message_id=payload.get("message_id")
        )

    async def _on_sync(self, payload: dict[str, Any]) -> None:
        # A client back from a drop may have missed a switch made in another tab.
        await self._send_event(await in_pool(branches.path_for_sync)(conversation=self.conversation))

    async def _send_snapshot(self) -> None:
        reply = await in_pool(live_reply)(self.conversation)
        if reply is None:
            return
        seq, text = await in_pool(live.read_snapshot)(reply.id)
        position = await in_pool(tree.message_position)(reply)
        self.sent_seq[str(reply.id)] = seq
        await self._send_event(events.snapshot_event(reply.id, seq, text, position))

    async def chat_event(self, message: dict[str, Any]) -> None:
        """A group event from a service (the worker's tokens and `done`, other tabs' messages)."""
        event = message["event"]
        if event["type"] == "token":
            if event["seq"] <= self.sent_seq.get(event["message_id"], 0):
                return
            self.sent_seq[event["message_id"]] = event["seq"]
        elif event["type"] == "done":
            self.sent_seq.pop(event["message_id"], None)
        elif event["type"] == "settings":
            # Another socket changed them: later sends here use the new ones.
            for name, value in event["settings"].items():
                setattr(self.conversation, name, value)
        await self._send_event(event)

    async def chat_session_end(self, message: dict[str, Any]) -> None:
        """The person was banned or deactivated: say so, then end this socket as a logged-out one would."""
        code = message.get("code") or "banned"
        await self._send_event(events.error_event(code, message.get("message") or BANNED_MESSAGE))
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _send_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event))
