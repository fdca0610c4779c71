"""Builders of the events the server sends on a conversation's websocket.

docs/protocol.md is the schema; each event type has one builder here and a
test. Importable without a configured Django (the worker builds events too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webapp.chat.models import Conversation, Message
    from webapp.chat.tree import Position
    from webapp.moderation.models import ModerationEvent

Event = dict[str, Any]


def message_fields(message: Message, position: Position | None = None) -> Event:
    """A stored message as events carry it; with `position`, where it sits in the tree."""
    fields: Event = {
        "id": str(message.id),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
    }
    if position is not None:
        fields |= position.fields()
    return fields


def message_event(message: Message, position: Position | None = None) -> Event:
    return {"type": "message", "message": message_fields(message, position)}


def start_event(message_id: object, queue_position: int, position: Position | None = None) -> Event:
    """A reply was queued; its first `start` says where it sits, the queue's updates need not."""
    event: Event = {"type": "start", "message_id": str(message_id), "queue_position": queue_position}
    if position is not None:
        event |= position.fields()
    return event


def path_event(leaf_id: object, messages: list[Message]) -> Event:
    """The path shown, whole: after a `switch` (to every socket) or a `sync` (to the one asking).

    Each message carries its tree fields (`position`, set by tree.with_positions),
    and its `error` and `stats` for the line under a reply.
    """
    return {
        "type": "path",
        "leaf_id": None if leaf_id is None else str(leaf_id),
        "messages": [
            message_fields(message, message.position) | {"error": message.error, "stats": message.stats()}
            for message in messages
        ],
    }


def token_event(message_id: object, seq: int, text: str) -> Event:
    return {"type": "token", "message_id": str(message_id), "seq": seq, "text": text}


def snapshot_event(message_id: object, seq: int, text: str, position: Position | None = None) -> Event:
    event: Event = {"type": "snapshot", "message_id": str(message_id), "seq": seq, "text": text}
    if position is not None:
        event |= position.fields()
    return event


def done_event(message: Message) -> Event:
    event: Event = {
        "type": "done",
        "message_id": str(message.id),
        "status": message.status,
        "content": message.content,
        "stats": message.stats(),
    }
    if message.error:
        event["error"] = message.error
    return event


def error_event(code: str, message: str, retry_after: int | None = None) -> Event:
    event: Event = {"type": "error", "code": code, "message": message}
    if retry_after is not None:
        event["retry_after"] = retry_after
    return event


def removed_event(message_ids: list[object]) -> Event:
    return {"type": "removed", "message_ids": [str(message_id) for message_id in message_ids]}


def settings_event(conversation: Conversation) -> Event:
    return {"type": "settings", "settings": conversation.chat_settings()}


def moderation_event(event: ModerationEvent) -> Event:
    """What a hook decided about a reply; never the text it caught (that is for staff)."""
    return {
        "type": "moderation",
        "message_id": str(event.message_id),
        "action": event.action,
        "categories": list(event.categories),
        "text": None,
    }
