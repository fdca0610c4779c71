"""Rate limits and quotas on the page's socket: an `error` with `retry_after`, and nothing stored.

The counters are the real ones in Redis (under the test run's prefix); the
worker is not running, so replies stay queued as long as a test needs.
"""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from tests.webapp.chat.test_consumers import enqueued, make_conversation, make_user, open_socket, receive
from webapp.chat import quotas, reply_jobs
from webapp.chat.models import Message

pytestmark = [pytest.mark.django_db(transaction=True)]

__all__ = ["enqueued"]  # the fixture, imported for these tests


def send(content: str = "hello") -> str:
    return json.dumps({"type": "send", "content": content})


async def stored(conversation) -> int:
    return await database_sync_to_async(Message.objects.filter(conversation=conversation).count)()


async def finish(reply_id: str) -> None:
    """End a queued reply as the worker would, so the next send is not `busy`."""
    await database_sync_to_async(reply_jobs.reply_finish)(
        message_id=reply_id,
        status="complete",
        content="ok",
        stats={"prompt_tokens": 7, "completion_tokens": 3},
        model_name="t",
    )


async def next_of(comm, kind: str) -> dict:
    while (event := await receive(comm))["type"] != kind:
        pass
    return event


async def test_messages_per_minute(settings, enqueued: list[str]) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_MINUTE = 2
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    for _ in range(2):
        await comm.send_to(text_data=send())
        await finish((await next_of(comm, "start"))["message_id"])
    await comm.send_to(text_data=send())
    event = await next_of(comm, "error")
    assert event["code"] == "rate_limited" and 1 <= event["retry_after"] <= 60
    assert await stored(conversation) == 4 and len(enqueued) == 2
    # Regenerate is a new reply too, and is counted the same way.
    await comm.send_to(text_data=json.dumps({"type": "regenerate"}))
    assert (await next_of(comm, "error"))["code"] == "rate_limited"
    assert await stored(conversation) == 4
    await comm.disconnect()


async def test_one_live_reply_per_person(settings, enqueued: list[str]) -> None:
    settings.MAX_LIVE_REPLIES_PER_USER = 1
    user = await make_user()
    first, second = await make_conversation(user), await make_conversation(user)
    comm_a, comm_b = await open_socket(first, user), await open_socket(second, user)
    await comm_a.send_to(text_data=send())
    reply_id = (await next_of(comm_a, "start"))["message_id"]
    await comm_b.send_to(text_data=send())
    event = await next_of(comm_b, "error")
    assert event["code"] == "busy" and event["retry_after"] >= 1
    assert await stored(second) == 0
    # Somebody else is not held up by this person's reply.
    other = await make_user("bob")
    theirs = await make_conversation(other)
    comm_c = await open_socket(theirs, other)
    await comm_c.send_to(text_data=send())
    assert (await receive(comm_c))["type"] == "message"
    await finish(reply_id)
    await comm_b.send_to(text_data=send())
    assert (await next_of(comm_b, "message"))["message"]["content"] == "hello"
    for comm in (comm_a, comm_b, comm_c):
        await comm.disconnect()


async def test_tokens_per_day_counted_by_the_worker(settings, enqueued: list[str]) -> None:
    settings.QUOTA_TOKENS_PER_DAY = 15
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(text_data=send())
    await finish((await next_of(comm, "start"))["message_id"])  # 10 tokens: under the quota
    assert await database_sync_to_async(quotas.tokens_used_today)(user_id=user.pk) == 10
    await comm.send_to(text_data=send())
    await finish((await next_of(comm, "start"))["message_id"])  # 20: over it
    await comm.send_to(text_data=send())
    event = await next_of(comm, "error")
    assert event["code"] == "quota_exceeded" and 1 <= event["retry_after"] <= 86400
    # An edit asks for a new reply as well.
    first_user_message = await database_sync_to_async(
        lambda: str(Message.objects.filter(conversation=conversation, role="user").first().id)
    )()
    await comm.send_to(
        text_data=json.dumps({"type": "edit", "message_id": first_user_message, "content": "x"})
    )
    assert (await next_of(comm, "error"))["code"] == "quota_exceeded"
    assert await stored(conversation) == 4
    await comm.disconnect()


def test_seconds_to_midnight() -> None:
    # 2026-01-01 23:59:30 UTC
    assert quotas._seconds_to_midnight(1767311970.0) == 30
