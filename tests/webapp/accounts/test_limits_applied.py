"""A group's limits where they bite: the page's socket, the API, API keys and exports."""

from __future__ import annotations

import json
import uuid

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import AsyncClient, Client

from tests.webapp.chat.test_consumers import enqueued, make_conversation, open_socket, receive
from tests.webapp.chat.test_quotas import finish, next_of, send
from webapp import workers
from webapp.accounts.models import GroupLimits
from webapp.api import services as api_services
from webapp.api.models import ApiKey
from webapp.chat.models import Conversation, Message

pytestmark = [pytest.mark.django_db(transaction=True)]

__all__ = ["enqueued"]  # the fixture, imported for these tests


@database_sync_to_async
def member_of(**limits):
    """A new person in a new group with these limits."""
    user = get_user_model().objects.create_user(username=f"u-{uuid.uuid4().hex[:8]}", password="x" * 12)
    group = Group.objects.create(name=f"g-{uuid.uuid4().hex[:8]}")
    GroupLimits.objects.create(group=group, **limits)
    group.user_set.add(user)
    return user


async def test_a_group_s_messages_per_minute_on_the_socket(settings, enqueued: list[str]) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_MINUTE = 100  # the default is generous: the group's 1 holds
    user = await member_of(messages_per_minute=1)
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(text_data=send())
    await finish((await next_of(comm, "start"))["message_id"])
    await comm.send_to(text_data=send())
    event = await next_of(comm, "error")
    assert event["code"] == "rate_limited" and event["message"] == "At most 1 messages a minute."
    assert len(enqueued) == 1
    await comm.disconnect()


async def test_a_group_s_largest_max_tokens_on_the_socket(settings, enqueued: list[str]) -> None:
    settings.MAX_TOKENS_LIMIT = 4096
    user = await member_of(max_tokens=64)
    comm = await open_socket(await make_conversation(user), user)
    await comm.send_to(text_data=json.dumps({"type": "send", "content": "hi", "params": {"max_tokens": 65}}))
    event = await receive(comm)
    assert (event["type"], event["code"]) == ("error", "invalid_params") and "64" in event["message"]
    assert enqueued == []
    # Asking nothing gets the default, held to the group's limit.
    await comm.send_to(text_data=send())
    reply_id = (await next_of(comm, "start"))["message_id"]
    reply = await database_sync_to_async(Message.objects.get)(pk=reply_id)
    assert reply.params["max_tokens"] == 64
    await comm.disconnect()


# --- the API -------------------------------------------------------------------------------------

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def heartbeat():
    workers.write_heartbeat("test-worker", {"state": "ready", "model": "m", "max_batch": 4, "active": 0})
    yield
    workers.remove_heartbeat("test-worker")


async def api_post(secret: str, body: dict):
    headers = {"Authorization": f"Bearer {secret}"}
    return await AsyncClient().post(
        "/v1/chat/completions", json.dumps(body), content_type="application/json", headers=headers
    )


async def key_of(user) -> str:
    _, secret = await database_sync_to_async(api_services.api_key_create)(owner=user, name="k")
    return secret


async def test_a_group_without_the_api_is_refused_403_and_nothing_is_stored(heartbeat) -> None:
    user = await member_of(api_allowed=False)
    secret = await key_of(user)
    response = await api_post(secret, BODY)
    assert response.status_code == 403 and response.json()["error"]["code"] == "api_not_allowed"
    models = await AsyncClient().get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert models.status_code == 403
    assert not await database_sync_to_async(Conversation.objects.filter(owner=user).exists)()


async def test_a_group_s_largest_max_tokens_on_the_api(heartbeat) -> None:
    secret = await key_of(await member_of(max_tokens=32))
    response = await api_post(secret, {**BODY, "max_tokens": 33})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "max_tokens" and "32" in error["message"]


def test_a_group_without_the_api_makes_no_keys_but_may_revoke_old_ones() -> None:
    user = member_of.func(api_allowed=False)
    old, _ = api_services.api_key_create(owner=user, name="old")
    client = Client()
    client.force_login(user)
    page = client.get("/settings/api-keys/")
    assert page.status_code == 403 and "do not allow API keys" in page.content.decode()
    assert client.post("/settings/api-keys/", {"name": "new"}).status_code == 403
    assert list(ApiKey.objects.filter(owner=user)) == [old]
    assert client.post(f"/settings/api-keys/{old.pk}/revoke/").status_code == 302
    old.refresh_from_db()
    assert old.revoked_at is not None


def test_a_group_without_exports_gets_403_on_every_export_and_a_moderator_still_may() -> None:
    user = member_of.func(exports_allowed=False)
    conversation = Conversation.objects.create(owner=user, title="mine")
    Message.objects.create(conversation=conversation, role="user", content="my words")
    client = Client()
    client.force_login(user)
    for url in (
        f"/c/{conversation.id}/export/json/",
        "/c/export/",
        "/c/export/?format=md",
        "/c/export/started/?format=md",
    ):
        response = client.get(url)
        assert response.status_code == 403 and "do not allow exports" in response.content.decode(), url
    moderator = get_user_model().objects.create_user(username="sam", is_staff=True)
    client.force_login(moderator)
    assert client.get(f"/c/{conversation.id}/export/json/").status_code == 200
