"""The moderators' group on the real Redis channel layer, and a hidden reply leaving open pages."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from webapp.moderation import services
from webapp.moderation.live import GROUP, MESSAGE_TYPE, notify_moderators


async def test_notify_moderators_reaches_a_channel_in_the_group() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    try:
        await asyncio.to_thread(notify_moderators, {"kind": "report", "id": 7})
        message = await asyncio.wait_for(layer.receive(channel), timeout=10)
    finally:
        await layer.group_discard(GROUP, channel)
    assert message == {"type": MESSAGE_TYPE, "event": {"kind": "report", "id": 7}}


@pytest.mark.django_db
def test_hiding_a_reply_tells_its_open_pages_after_commit(
    reply, moderator, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    published: list[tuple[object, dict]] = []
    monkeypatch.setattr(
        services.chat_live,
        "publish",
        lambda conversation_id, event: published.append((conversation_id, event)),
    )
    monkeypatch.setattr(services, "notify_moderators", lambda item: None)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.reply_hide(moderator=moderator, message=reply)
    assert published == []
    for callback in callbacks:
        callback()
    assert published == [(reply.conversation_id, {"type": "removed", "message_ids": [str(reply.id)]})]
