"""The access layer on the sockets: the moderators' feed per role, and a deactivation closes every socket."""

from __future__ import annotations

import json
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from tests.webapp.chat.test_consumers import make_conversation, open_socket, receive
from webapp.accounts import services
from webapp.accounts.models import Account
from webapp.accounts.services import DEACTIVATED_MESSAGE
from webapp.moderation import live as moderation_live
from webapp.moderation.routing import websocket_urlpatterns

pytestmark = [pytest.mark.django_db(transaction=True)]

feed = URLRouter(websocket_urlpatterns)


@database_sync_to_async
def make(role: str | None = None, **flags: bool):
    user = get_user_model().objects.create_user(username=f"u-{uuid.uuid4().hex[:8]}", **flags)
    if role:
        Account.objects.create(user=user, role=role)
    return get_user_model().objects.get(pk=user.pk)


async def listen(user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(feed, "/ws/moderation/")
    comm.scope["user"] = user
    connected, _ = await comm.connect()
    assert connected
    return comm


@pytest.mark.parametrize(
    ("role", "flags", "allowed"),
    [
        (None, {}, False),
        ("moderator", {}, True),
        ("administrator", {}, True),
        (None, {"is_staff": True}, True),
        ("moderator", {"is_active": False}, False),
    ],
)
async def test_the_moderators_feed_per_role(role, flags, allowed) -> None:
    comm = await listen(await make(role, **flags))
    try:
        if allowed:
            assert await comm.receive_nothing(timeout=0.3)
        else:
            assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    finally:
        await comm.disconnect()


async def test_deactivation_closes_the_person_s_chat_and_dashboard_sockets_at_once() -> None:
    administrator = await make("administrator")
    moderator, bystander = await make("moderator"), await make()
    chat = await open_socket(await make_conversation(moderator), moderator)
    dashboard = await listen(moderator)
    theirs = await open_socket(await make_conversation(bystander), bystander)
    assert await dashboard.receive_nothing(timeout=0.5)  # accepted before it joins the groups: let it join
    await database_sync_to_async(services.account_deactivate)(administrator=administrator, user=moderator)
    assert await receive(chat) == {"type": "error", "code": "deactivated", "message": DEACTIVATED_MESSAGE}
    assert await chat.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert await dashboard.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert await theirs.receive_nothing(timeout=0.3)
    await theirs.disconnect()


async def test_a_demoted_moderator_hears_nothing_more_and_is_closed() -> None:
    administrator, moderator = await make("administrator"), await make("moderator")
    dashboard = await listen(moderator)
    assert await dashboard.receive_nothing(timeout=0.5)  # accepted before it joins the group: let it join
    await database_sync_to_async(services.account_set_role)(
        administrator=administrator, user=moderator, role="user"
    )
    await database_sync_to_async(moderation_live.notify_moderators)({"kind": "event", "id": 1})
    assert await dashboard.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    await dashboard.disconnect()


async def test_a_moderator_still_hears_items() -> None:
    dashboard = await listen(await make("moderator"))
    assert await dashboard.receive_nothing(timeout=0.5)  # accepted before it joins the group: let it join
    await database_sync_to_async(moderation_live.notify_moderators)({"kind": "event", "id": 7})
    heard = json.loads(await dashboard.receive_from(timeout=5))
    assert heard == {"type": "moderation.item", "item": {"kind": "event", "id": 7}}
    await dashboard.disconnect()


async def test_a_deactivated_person_s_socket_that_missed_the_close_cannot_send(monkeypatch) -> None:
    sent: list[object] = []
    monkeypatch.setattr("webapp.chat.services.celery_app.send_task", lambda *a, **k: sent.append(a))
    monkeypatch.setattr("webapp.chat.live.sessions_end", lambda *a, **k: None)  # a Redis blip
    administrator, person = await make("administrator"), await make()
    conversation = await make_conversation(person)
    chat = await open_socket(conversation, person)
    await database_sync_to_async(services.account_deactivate)(administrator=administrator, user=person)
    await chat.send_to(text_data=json.dumps({"type": "send", "content": "still here?"}))
    event = await receive(chat)
    assert (event["type"], event["code"]) == ("error", "deactivated")
    assert not await database_sync_to_async(conversation.messages.exists)() and sent == []
    await chat.disconnect()
