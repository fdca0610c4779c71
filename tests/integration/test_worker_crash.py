"""A worker SIGKILLed mid-reply, and a job delivered twice, through the real processes.

The stack's worker runs the scripted engine slowly, so a reply is surely in
the middle when the test kills it. A new worker is started at once, as a
supervisor would: its heartbeat thread sweeps, and it serves what comes next.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_reply_stream import collect_reply, next_event
from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration

LONG = " ".join(f"word{i}" for i in range(100))
SHORT = "A short answer."
# The first trigger found in the whole prompt wins: the later question is tried first.
REPLIES = {"short please": SHORT, "long please": LONG}
FAILED_WITHIN_S = 30


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        tmp=Path(tmp_path_factory.mktemp("crash")),
        extra_env={
            "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
            "SCRIPTED_REPLIES": json.dumps(REPLIES),
            "SCRIPTED_DELAY_S": "0.03",
            # The default heartbeat (WORKER_HEARTBEAT_S=5): the 30 s bound is for it.
            "DEFAULT_MAX_TOKENS": "2000",
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


async def test_a_killed_worker_s_reply_fails_then_retry_and_the_next_message_work(slow_stack: Stack) -> None:
    client = Client(slow_stack).signup()
    conversation = client.new_conversation()
    async with client.connect(conversation) as ws:
        await ws.send(json.dumps({"type": "send", "content": "long please"}))
        start = await next_event(ws, "start")
        seen = [await next_event(ws, "token"), await next_event(ws, "token")]

        slow_stack.kill(slow_stack.worker)
        killed_at = time.monotonic()
        slow_stack.start_worker()

        tokens, done = await collect_reply(ws)
        assert time.monotonic() - killed_at < FAILED_WITHIN_S, "the orphaned reply took too long to fail"
        assert done["message_id"] == start["message_id"] and done["status"] == "failed"
        assert "worker" in done["error"] and "retry" in done["error"]
        # What the person saw stays: the failed reply keeps the text streamed before the crash.
        streamed = "".join(t["text"] for t in seen + tokens)
        assert done["content"] == streamed and 0 < len(streamed) < len(LONG)

        # Retry (the page's button sends `regenerate`): the new worker writes it whole.
        await ws.send(json.dumps({"type": "regenerate"}))
        retried_start = await next_event(ws, "start")
        _, retried = await collect_reply(ws)
        assert retried["message_id"] == retried_start["message_id"] != start["message_id"]
        assert retried["status"] == "complete" and retried["content"] == LONG

        await ws.send(json.dumps({"type": "send", "content": "short please"}))
        _, nxt = await collect_reply(ws)
        assert nxt["status"] == "complete" and nxt["content"] == SHORT

    stored = slow_stack.stored_messages(conversation)
    # The failed reply stays, as the first version beside its retry (the conversation is a tree).
    assert [(m["role"], m["status"]) for m in stored] == [
        ("user", "complete"),
        ("assistant", "failed"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]


async def test_a_job_delivered_twice_writes_one_reply_once(slow_stack: Stack) -> None:
    client = Client(slow_stack).signup()
    conversation = client.new_conversation()
    async with client.connect(conversation) as ws:
        await next_event_or_none(ws)  # nothing live yet: no snapshot
        # The first copy is sent by the send itself; the second is the duplicate, at once, so
        # both are taken by free threads of the worker together.
        reply_id = slow_stack.manage(
            "shell",
            "-c",
            "from webapp.chat import services; from webapp.chat.models import Conversation; "
            f"c = Conversation.objects.get(id='{conversation}'); "
            "p = services.check_send(conversation=c, content='short please', raw_params=None)[1]; "
            "r = services.reply_send(conversation=c, content='short please', params=p); "
            "services.reply_enqueue(reply_id=r.id); print(r.id)",
        ).split()[-1]
        tokens, done = await collect_reply(ws)
        assert done["message_id"] == reply_id and done["content"] == SHORT
        assert "".join(t["text"] for t in tokens) == SHORT, "text streamed twice or interleaved"
        # No second `done`, no more tokens: the duplicate did nothing.
        assert await next_event_or_none(ws, wait_s=2.0) is None
    stored = slow_stack.stored_messages(conversation)
    assert [(m["role"], m["content"], m["status"]) for m in stored] == [
        ("user", "short please", "complete"),
        ("assistant", SHORT, "complete"),
    ]


async def next_event_or_none(ws, wait_s: float = 0.5) -> dict | None:
    try:
        return json.loads(await asyncio.wait_for(ws.recv(), wait_s))
    except TimeoutError:
        return None
