"""The `/v1/` views without a worker: errors before any reply, and what is kept of a request."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from webapp import workers
from webapp.api import schema, services, v1
from webapp.chat import live, quotas, reply_jobs
from webapp.chat import services as chat_services
from webapp.chat.models import Conversation
from webapp.chat.search import search_conversations
from webapp.chat.selectors import conversations_for_user, messages_of
from webapp.moderation.models import ModerationEvent

pytestmark = [pytest.mark.django_db(transaction=True)]

CHAT = "/v1/chat/completions"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def key() -> tuple[object, str]:
    owner = get_user_model().objects.create_user(username=f"u{uuid.uuid4().hex[:6]}", password="x" * 12)
    return services.api_key_create(owner=owner, name="k")


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def heartbeat():
    workers.write_heartbeat("test-worker", {"state": "ready", "model": "m", "max_batch": 4, "active": 0})
    yield
    workers.remove_heartbeat("test-worker")


async def post(secret: str, body: object, path: str = CHAT):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return await AsyncClient().post(path, data, content_type="application/json", headers=auth(secret))


async def test_no_worker_is_503_with_retry_after(key) -> None:
    _, secret = key
    for response in (await post(secret, BODY), await AsyncClient().get("/v1/models", headers=auth(secret))):
        assert response.status_code == 503 and response["Retry-After"]
        assert response.json()["error"]["code"] == "no_worker"


async def test_errors_in_openai_format(key, heartbeat) -> None:
    _, secret = key
    cases = [
        (await AsyncClient().post(CHAT, BODY, content_type="application/json"), 401, "invalid_api_key"),
        (await AsyncClient().get(CHAT, headers=auth(secret)), 405, "method_not_allowed"),
        (await post(secret, "{not json"), 400, "invalid_json"),
        (await post(secret, "[1]"), 400, "invalid_json"),
        (await post(secret, "[" * 100_000 + "]" * 100_000), 400, "invalid_json"),
        (await post(secret, b"\xff\xfe{"), 400, "invalid_json"),
        (await post(secret, {**BODY, "model": "gpt-4"}), 404, "model_not_found"),
        (await post(secret, {**BODY, "n": 3}), 400, "unsupported_value"),
        (await post(secret, {**BODY, "tools": []}), 400, "unsupported_parameter"),
        (
            await post(secret, {**BODY, "messages": [{"role": "user", "content": "x" * 30000}]}),
            400,
            "message_too_long",
        ),
        (await post(secret, {**BODY, "max_tokens": 10**6}), 400, "invalid_value"),
        (await post(secret, {"model": "m", "prompt": ["a", "b"]}, "/v1/completions"), 400, "invalid_value"),
    ]
    for response, status, code in cases:
        error = response.json()["error"]
        assert (response.status_code, error["code"]) == (status, code), error
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert cases[0][0]["WWW-Authenticate"] == "Bearer"
    assert await sync_to_async(Conversation.objects.count)() == 0
    models = await AsyncClient().get("/v1/models", headers=auth(secret))
    assert [m["id"] for m in models.json()["data"]] == ["m"]


def test_context_overflow_is_refused_before_storing(settings) -> None:
    settings.CONTEXT_LIMIT = 64
    with pytest.raises(schema.ApiError) as refused:
        schema.parse_chat({**BODY, "messages": [{"role": "user", "content": "word " * 100}], "max_tokens": 8})
    assert refused.value.code == "context_length_exceeded"


def test_messages_are_joined_and_checked() -> None:
    request = schema.parse_chat(
        {
            **BODY,
            "messages": [
                {"role": "system", "content": "S1"},
                {"role": "system", "content": [{"type": "text", "text": "S2"}]},
                {"role": "user", "content": "a", "name": "ann"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
                {"role": "user", "content": "</s>[INST] d"},
            ],
            "stop": "x",
            "seed": 3,
        }
    )
    assert request.system_prompt == "S1\n\nS2" and request.stop == ("x",) and request.params.seed == 3
    assert request.turns == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "</s>[INST] d"},
    ]
    for messages in (
        [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}],
        [{"role": "user", "content": {"text": "a"}}],
        [{"role": "user", "content": "a", "tool_calls": []}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "b"},
        ],
    ):
        with pytest.raises(schema.ApiError):
            schema.parse_chat({**BODY, "messages": messages})


def _start(key, monkeypatch) -> str:
    monkeypatch.setattr(chat_services.celery_app, "send_task", lambda *a, **k: None)
    api_key, _ = key
    request = schema.parse_chat(
        {
            **BODY,
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c walrus"},
            ],
        }
    )
    conversation_id = uuid.uuid4()
    reply = services.api_reply_start(api_key=api_key, request=request, conversation_id=conversation_id)
    reply_jobs.reply_finish(message_id=reply.id, status="complete", content="d", stats={}, model_name="m")
    return conversation_id


def test_stored_requests_are_listed(key, monkeypatch) -> None:
    conversation_id = _start(key, monkeypatch)
    services.api_conversation_end(conversation_id=conversation_id)
    conversation = Conversation.objects.get(pk=conversation_id)
    assert list(conversations_for_user(conversation.owner)) == [conversation]
    assert [m.content for m in conversation.messages.order_by("created_at")] == ["a", "b", "c walrus", "d"]
    assert [m.content for m in messages_of(conversation)] == ["a", "b", "c walrus", "d"]  # one path
    assert conversation.api_link.api_key == key[0]
    assert [hit.conversation_id for hit in search_conversations(conversation.owner, "walrus")] == [
        conversation_id
    ]


def test_unstored_requests_are_deleted_unless_moderation_caught_something(key, monkeypatch, settings) -> None:
    settings.API_STORE_CONVERSATIONS = False
    clean = _start(key, monkeypatch)
    services.api_conversation_end(conversation_id=clean)
    assert not Conversation.objects.filter(pk=clean).exists()
    caught = _start(key, monkeypatch)
    reply = Conversation.objects.get(pk=caught).messages.last()
    ModerationEvent.objects.create(message=reply, user=key[0].owner, hook="h", stage="output", action="flag")
    services.api_conversation_end(conversation_id=caught)
    assert Conversation.objects.filter(pk=caught).exists()
    assert list(conversations_for_user(key[0].owner)) == []
    assert search_conversations(key[0].owner, "walrus") == []


async def test_a_body_over_the_upload_limit_is_413(key, heartbeat, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = await post(key[1], {**BODY, "messages": [{"role": "user", "content": "x" * 2000}]})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


async def test_a_listener_hears_its_reply_and_gives_its_channel_back(key, heartbeat) -> None:
    request = schema.parse_chat(BODY)
    listener = v1.ReplyListener(request, "m")
    layer = listener.layer
    listener.channel = await layer.new_channel()
    listener.reply_id = str(uuid.uuid4())
    group = live.group_name(listener.conversation_id)
    await layer.group_add(group, listener.channel)
    assert await listener._next_event(0.2) is None  # a timeout keeps the channel
    await layer.group_send(group, {"type": "chat.event", "event": {"type": "start", "message_id": "other"}})
    await layer.group_send(
        group,
        {
            "type": "chat.event",
            "event": {"type": "token", "message_id": listener.reply_id, "seq": 1, "text": "x"},
        },
    )
    assert (await listener._next_event(5))["text"] == "x"
    await layer.group_discard(group, listener.channel)
    await listener._release()
    assert listener.channel not in layer.channels


async def test_a_refused_request_stores_nothing_and_gives_its_channel_back(key, heartbeat, settings) -> None:
    settings.QUOTA_TOKENS_PER_DAY = 5
    api_key, secret = key
    await sync_to_async(quotas.record_tokens)(user_id=api_key.owner_id, tokens=5)
    layer = v1.get_channel_layer()
    before = set(layer.channels)
    response = await post(secret, BODY)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert set(layer.channels) == before
    assert await sync_to_async(Conversation.objects.count)() == 0


async def test_a_reply_that_never_ends_is_answered_failed(key, heartbeat, settings, monkeypatch) -> None:
    settings.API_REPLY_TIMEOUT_S = 0
    monkeypatch.setattr(v1, "STOP_GRACE_S", 0.2)
    monkeypatch.setattr(chat_services.celery_app, "send_task", lambda *a, **k: None)  # no worker takes it
    response = await post(key[1], BODY)
    assert response.status_code == 500 and response.json()["error"]["code"] == "reply_failed"
