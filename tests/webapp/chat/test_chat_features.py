"""Edit, regenerate, settings and resume over the conversation websocket; the guardrail prompt."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from inference.chat_template import encode_chat, sentencepiece_processor
from tests.webapp.chat.test_consumers import enqueued, make_conversation, make_user, open_socket, receive
from webapp.chat import reply_jobs, services
from webapp.chat.models import Conversation, Message

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["enqueued"]  # the fixture, imported for these tests


async def send_and_claim(comm, text: str) -> tuple[str, str]:
    """Send a message, read its echo and start; returns (user message id, reply id)."""
    await comm.send_to(text_data=json.dumps({"type": "send", "content": text}))
    echoed = await receive(comm)
    start = await receive(comm)
    return echoed["message"]["id"], start["message_id"]


@database_sync_to_async
def finish(reply_id: str, content: str = "an answer") -> None:
    reply_jobs.reply_finish(message_id=reply_id, status="complete", content=content, stats={}, model_name="t")


@database_sync_to_async
def stored(conversation: Conversation) -> list[tuple[str, str, str]]:
    return list(conversation.messages.order_by("created_at").values_list("role", "content", "status"))


# --- edit --------------------------------------------------------------------------


async def test_edit_adds_a_version_and_queues_a_new_reply_keeping_the_old_turns(enqueued: list[str]) -> None:
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    first_id, first_reply = await send_and_claim(comm, "first")
    await finish(first_reply)
    assert (await receive(comm))["type"] == "done"
    second_id, second_reply = await send_and_claim(comm, "second")
    await finish(second_reply)
    await receive(comm)

    await comm.send_to(
        text_data=json.dumps(
            {"type": "edit", "message_id": first_id, "content": "first, edited", "params": {"max_tokens": 5}}
        )
    )
    # The old version and every turn after it leave the path shown; none is deleted.
    removed = await receive(comm)
    assert removed == {"type": "removed", "message_ids": [first_id, first_reply, second_id, second_reply]}
    edited = await receive(comm)
    assert edited["type"] == "message" and edited["message"]["id"] != first_id
    assert edited["message"]["content"] == "first, edited"
    assert edited["message"]["parent_id"] is None
    assert edited["message"]["sibling_ids"] == [first_id, edited["message"]["id"]]
    assert (edited["message"]["sibling_index"], edited["message"]["sibling_count"]) == (1, 2)
    start = await receive(comm)
    assert start["type"] == "start" and enqueued[-1] == start["message_id"]
    assert start["parent_id"] == edited["message"]["id"] and start["sibling_count"] == 1
    assert await stored(conversation) == [
        ("user", "first", "complete"),
        ("assistant", "an answer", "complete"),
        ("user", "second", "complete"),
        ("assistant", "an answer", "complete"),
        ("user", "first, edited", "complete"),
        ("assistant", "", "queued"),
    ]
    reply = await database_sync_to_async(Message.objects.get)(id=start["message_id"])
    assert reply.params["max_tokens"] == 5
    await comm.disconnect()


async def _edit_error(comm, frame: dict) -> str:
    await comm.send_to(text_data=json.dumps({"type": "edit", **frame}))
    event = await receive(comm)
    assert event["type"] == "error" and event["message"]
    return event["code"]


async def test_bad_edits_get_an_error_and_change_nothing(settings, enqueued: list[str]) -> None:
    settings.MAX_MESSAGE_CHARS = 50
    user = await make_user()
    conversation = await make_conversation(user)
    other = await make_conversation(user)
    comm = await open_socket(conversation, user)
    other_comm = await open_socket(other, user)
    other_id, other_reply = await send_and_claim(other_comm, "elsewhere")
    first_id, reply_id = await send_and_claim(comm, "first")
    # The reply is still queued: no edit until it ends.
    assert await _edit_error(comm, {"message_id": first_id, "content": "x"}) == "reply_in_progress"
    await finish(reply_id)
    await receive(comm)
    before = await stored(conversation)
    cases = [
        ({"message_id": other_id, "content": "x"}, "unknown_message"),
        ({"message_id": "not-a-uuid", "content": "x"}, "unknown_message"),
        ({"message_id": 12, "content": "x"}, "invalid_message_id"),
        ({"content": "x"}, "invalid_message_id"),
        ({"message_id": reply_id, "content": "x"}, "not_a_user_message"),
        ({"message_id": first_id, "content": "   "}, "empty_message"),
        ({"message_id": first_id, "content": "y" * 51}, "message_too_long"),
        ({"message_id": first_id, "content": 3}, "invalid_content"),
        ({"message_id": first_id, "content": "x", "params": {"top_p": 0}}, "invalid_params"),
    ]
    for frame, code in cases:
        assert await _edit_error(comm, frame) == code, frame
    assert await stored(conversation) == before
    assert len(enqueued) == 2
    await comm.disconnect()
    await other_comm.disconnect()
    assert other_reply


async def test_regenerate_adds_a_sibling_reply_and_says_which_left_the_path(enqueued: list[str]) -> None:
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    question_id, reply_id = await send_and_claim(comm, "hello")
    await finish(reply_id)
    await receive(comm)
    await comm.send_to(text_data=json.dumps({"type": "regenerate"}))
    assert await receive(comm) == {"type": "removed", "message_ids": [reply_id]}
    start = await receive(comm)
    assert start["type"] == "start" and start["message_id"] != reply_id
    assert start["parent_id"] == question_id
    assert start["sibling_ids"] == [reply_id, start["message_id"]]
    assert (start["sibling_index"], start["sibling_count"]) == (1, 2)
    assert await stored(conversation) == [
        ("user", "hello", "complete"),
        ("assistant", "an answer", "complete"),
        ("assistant", "", "queued"),
    ]
    await comm.disconnect()


# --- settings ------------------------------------------------------------------------


async def test_settings_are_stored_broadcast_and_used_by_the_next_send(enqueued: list[str]) -> None:
    user = await make_user()
    conversation = await make_conversation(user)
    comm, other_tab = await open_socket(conversation, user), await open_socket(conversation, user)
    new = {"system_prompt": "Be brief.", "temperature": 0.2, "top_p": 0.9, "max_tokens": 12, "seed": 3}
    await comm.send_to(text_data=json.dumps({"type": "settings", "settings": {**new, "guardrail": False}}))
    for socket in (comm, other_tab):
        assert await receive(socket) == {"type": "settings", "settings": {**new, "guardrail": False}}
    saved = await database_sync_to_async(Conversation.objects.get)(id=conversation.id)
    assert saved.chat_settings() == {**new, "guardrail": False}
    # A send without params (from the other tab, which heard the change) uses them.
    _, reply_id = await send_and_claim(other_tab, "hi")
    await receive(comm)
    await receive(comm)
    reply = await database_sync_to_async(Message.objects.get)(id=reply_id)
    assert {k: reply.params[k] for k in ("temperature", "top_p", "max_tokens", "seed")} == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 12,
        "seed": 3,
    }
    # Partial updates keep the rest; null max_tokens and seed go back to the defaults.
    await comm.send_to(
        text_data=json.dumps({"type": "settings", "settings": {"max_tokens": None, "seed": None}})
    )
    assert (await receive(comm))["settings"] == {**new, "max_tokens": None, "seed": None, "guardrail": False}
    await comm.disconnect()
    await other_tab.disconnect()


BAD_SETTINGS = [
    ("cold", "invalid_settings"),
    ({"colour": "red"}, "invalid_settings"),
    ({"guardrail": "yes"}, "invalid_settings"),
    ({"temperature": 2.5}, "invalid_params"),
    ({"temperature": "hot"}, "invalid_params"),
    ({"top_p": 0}, "invalid_params"),
    ({"max_tokens": 0}, "invalid_params"),
    ({"max_tokens": 10**6}, "invalid_params"),
    ({"seed": -1}, "invalid_params"),
    ({"seed": 2**32}, "invalid_params"),
    ({"system_prompt": 5}, "invalid_system_prompt"),
    ({"system_prompt": "x" * 101}, "system_prompt_too_long"),
]


@pytest.mark.parametrize(("raw", "code"), BAD_SETTINGS)
async def test_bad_settings_get_an_error_and_store_nothing(settings, raw: object, code: str) -> None:
    settings.MAX_SYSTEM_PROMPT_CHARS = 100
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(text_data=json.dumps({"type": "settings", "settings": raw}))
    event = await receive(comm)
    assert event["type"] == "error" and event["code"] == code and event["message"]
    saved = await database_sync_to_async(Conversation.objects.get)(id=conversation.id)
    assert saved.chat_settings() == {
        "system_prompt": "",
        "temperature": 0.7,
        "top_p": 1.0,
        "max_tokens": None,
        "seed": None,
        "guardrail": True,
    }
    await comm.disconnect()


async def test_settings_that_cannot_fit_the_context_are_refused(settings) -> None:
    settings.CONTEXT_LIMIT = 200
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(text_data=json.dumps({"type": "settings", "settings": {"max_tokens": 150}}))
    assert (await receive(comm))["code"] == "context_overflow"  # the guardrail prompt takes room too
    await comm.disconnect()


# --- resume after a drop ----------------------------------------------------------------


async def test_resume_sends_the_done_a_dropped_socket_missed(enqueued: list[str]) -> None:
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    user_id, reply_id = await send_and_claim(comm, "hello")
    await comm.disconnect()
    await finish(reply_id, "the whole answer")
    comm = await open_socket(conversation, user)
    await comm.send_to(text_data=json.dumps({"type": "resume", "message_id": reply_id}))
    done = await receive(comm)
    assert done["type"] == "done" and done["content"] == "the whole answer"
    await comm.send_to(text_data=json.dumps({"type": "resume", "message_id": user_id}))
    assert (await receive(comm))["code"] == "not_a_reply"
    await comm.send_to(text_data=json.dumps({"type": "resume", "message_id": "nope"}))
    assert (await receive(comm))["code"] == "unknown_message"
    await comm.disconnect()


# --- the guardrail prompt ---------------------------------------------------------------


@pytest.mark.parametrize("guardrail", [True, False])
def test_the_worker_gets_the_guardrail_prompt_only_when_it_is_on(
    guardrail: bool, enqueued: list[str]
) -> None:
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.create_user(username=f"g{guardrail}", password="x" * 12)
    conversation = Conversation.objects.create(
        owner=owner, system_prompt="Answer in French.", guardrail=guardrail
    )
    content, params = services.check_send(conversation=conversation, content="Hello", raw_params=None)
    reply = services.reply_send(conversation=conversation, content=content, params=params)
    job = reply_jobs.reply_claim(message_id=reply.id)
    assert job is not None
    prompt = sentencepiece_processor().decode(encode_chat(job.messages, job.system_prompt))
    assert "Answer in French." in prompt and "Hello" in prompt
    assert (services.GUARDRAIL_PROMPT in prompt) is guardrail
    if guardrail:
        assert job.system_prompt == services.GUARDRAIL_PROMPT + "\n\nAnswer in French."


def test_new_conversations_follow_the_guardrail_default(settings) -> None:
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.create_user(username="d", password="x" * 12)
    assert services.conversation_create(owner=owner).guardrail is True
    settings.GUARDRAIL_DEFAULT = False
    assert services.conversation_create(owner=owner).guardrail is False
