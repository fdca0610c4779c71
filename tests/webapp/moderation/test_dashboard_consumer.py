"""The moderators' live feed `/ws/moderation/`, with WebsocketCommunicator on the real Redis layer."""

from __future__ import annotations

import json
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from inference.moderation.base import Action, Stage, Verdict
from webapp.chat.models import Conversation, Message
from webapp.moderation import services
from webapp.moderation.routing import websocket_urlpatterns

pytestmark = [pytest.mark.django_db(transaction=True)]

application = URLRouter(websocket_urlpatterns)


@database_sync_to_async
def make_user(*, staff: bool):
    return get_user_model().objects.create_user(username=f"u-{uuid.uuid4().hex[:8]}", is_staff=staff)


@database_sync_to_async
def flag_a_reply(owner) -> int:
    """What the worker does when a hook flags a reply: record the event (announced after commit)."""
    conversation = Conversation.objects.create(owner=owner)
    reply = Message.objects.create(conversation=conversation, role="assistant", content="the reply")
    verdict = Verdict(Action.FLAG, ("violence_and_threats",), 0.8, "threat", hook="rules", stage=Stage.OUTPUT)
    [event] = services.moderation_record(reply=reply, verdicts=[verdict], original="the reply")
    return event.pk


async def connect(user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, "/ws/moderation/")
    comm.scope["user"] = user
    connected, _ = await comm.connect()
    assert connected  # accepted first, so a refusal's close code reaches the client
    return comm


@pytest.mark.parametrize(("who", "code"), [("anonymous", 4401), ("user", 4403)])
async def test_only_staff_may_listen(who, code) -> None:
    user = AnonymousUser() if who == "anonymous" else await make_user(staff=False)
    comm = await connect(user)
    try:
        assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": code}
    finally:
        await comm.disconnect()


async def test_staff_hear_new_items_and_other_moderators_actions_and_users_hear_nothing() -> None:
    moderator, author = await make_user(staff=True), await make_user(staff=False)
    staff_socket, user_socket = await connect(moderator), await connect(author)
    try:
        assert await user_socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
        event_id = await flag_a_reply(author)
        heard = json.loads(await staff_socket.receive_from(timeout=10))
        assert heard["type"] == "moderation.item"
        assert {k: heard["item"][k] for k in ("kind", "id", "action", "categories", "user_id")} == {
            "kind": "event",
            "id": event_id,
            "action": "flag",
            "categories": ["violence_and_threats"],
            "user_id": author.pk,
        }
        # Another moderator dismisses it: every open dashboard hears which item, and who.
        other = await make_user(staff=True)
        event = await database_sync_to_async(services.ModerationEvent.objects.get)(pk=event_id)
        await database_sync_to_async(services.item_dismiss)(moderator=other, event=event)
        heard = json.loads(await staff_socket.receive_from(timeout=10))
        item = heard["item"]
        assert (item["kind"], item["action"], item["target_type"], item["target_id"], item["moderator"]) == (
            "action",
            "dismiss",
            "event",
            str(event_id),
            other.username,
        )
        # The feed reads nothing from the client, and stays open.
        await staff_socket.send_to(text_data='{"type": "send", "content": "hi"}')
        assert await staff_socket.receive_nothing(timeout=0.3)
    finally:
        await staff_socket.disconnect()
        await user_socket.disconnect()
