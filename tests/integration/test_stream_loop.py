"""Many chats at once through each worker's one reply loop, two workers on one Redis, real processes.

The claims, under the loop that streams every reply of a worker at the
engine's step: each reply's `token` events rise by one and concatenate to
its `done` content and its stored text; a blocked phrase, however the steps
split it, reaches no socket while the chats beside it complete; a stop ends
its reply within a step or two; replies spread over both workers; sockets on
a second Daphne process get the same stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from inference.chat_template import sentencepiece_processor
from tests.integration.test_moderation import BLOCK_MISSILES
from tests.integration.test_reply_stream import next_event
from tests.support.stack import Client, Stack, free_port

pytestmark = pytest.mark.integration

LONG = " ".join(f"Line {i} of a long and calm answer." for i in range(60))
BLOCKED = "Fine. " + "We talk about the weather and many other things. " * 3 + "Then we launch the missiles."
REPLIES = {f"<chat {i}>": f"Reply {i}: " + LONG[: 150 + 11 * i] for i in range(10)}
REPLIES |= {"<blocked>": BLOCKED, "<endless>": LONG}


@pytest.fixture(scope="module")
def looped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        tmp=Path(tmp_path_factory.mktemp("looped")),
        extra_env={
            "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
            "SCRIPTED_REPLIES": json.dumps(REPLIES),
            "SCRIPTED_DELAY_S": "0.02",
            "MAX_BATCH": "8",
        },
    )
    stack.start()
    stack.start_worker()  # a second worker on the same Redis and queue
    stack.second_port = free_port()
    stack.start_daphne(stack.second_port)  # and a second Daphne: more fan-out
    stack.import_rules([BLOCK_MISSILES])
    try:
        yield stack
    finally:
        stack.stop()


async def chat(
    client: Client, content: str, *, stop_after: int | None = None
) -> tuple[list[dict], dict, str]:
    """Send one message on a new conversation; its token events, its done, and the conversation."""
    conversation = client.new_conversation()
    tokens: list[dict] = []
    async with client.connect(conversation) as ws:
        await ws.send(json.dumps({"type": "send", "content": content, "params": {"max_tokens": 1000}}))
        while True:
            event = await next_event(ws)
            if event["type"] == "token":
                tokens.append(event)
                if stop_after is not None and len(tokens) == stop_after:
                    await ws.send(json.dumps({"type": "stop"}))
            elif event["type"] == "done":
                return tokens, event, conversation


async def test_many_chats_at_once_stream_whole_and_a_block_or_a_stop_touches_only_its_own(
    looped: Stack,
) -> None:
    people = [Client(looped).signup() for _ in range(12)]
    triggers = [*(f"<chat {i}>" for i in range(10)), "<blocked>", "<endless>"]
    results = await asyncio.gather(
        *(
            chat(person, trigger, stop_after=3 if trigger == "<endless>" else None)
            for person, trigger in zip(people, triggers, strict=True)
        )
    )
    for trigger, (tokens, done, conversation) in zip(triggers, results, strict=True):
        streamed = "".join(t["text"] for t in tokens)
        assert [t["seq"] for t in tokens] == list(range(1, len(tokens) + 1)), trigger
        assert done["content"] == streamed, trigger
        stored = looped.stored_messages(conversation)[-1]
        assert stored["content"] == streamed and stored["status"] == done["status"], trigger
        if trigger == "<blocked>":
            assert done["status"] == "blocked"
            assert "launch" not in streamed and "missiles" not in streamed and BLOCKED.startswith(streamed)
        elif trigger == "<endless>":
            assert done["status"] == "stopped"
            # Stopped after its third event, at 20 ms a step: far short of the whole reply.
            assert done["stats"]["completion_tokens"] < len(sentencepiece_processor().encode(LONG)) // 2
            assert LONG.startswith(streamed)
        else:
            assert done["status"] == "complete" and streamed == REPLIES[trigger], trigger
    # Both workers served some of them (each lists what it wrote in its log).
    logs = [p.read_text(errors="replace") for p in sorted(looped.tmp.glob("worker-*.log"))]
    assert len(logs) == 2 and all("inference.generate_reply" in log and "succeeded" in log for log in logs)


async def test_a_second_daphne_forwards_the_same_stream(looped: Stack) -> None:
    person = Client(looped).signup()
    conversation = person.new_conversation()
    other = person.socket_url(conversation).replace(f":{looped.port}/", f":{looped.second_port}/")
    headers = person.socket_headers()
    async with (
        person.connect(conversation) as first,
        websockets.connect(other, additional_headers=headers) as second,
    ):
        await first.send(json.dumps({"type": "send", "content": "<chat 3>", "params": {"max_tokens": 1000}}))
        streams: list[list[dict]] = [[], []]
        for socket, stream in ((first, streams[0]), (second, streams[1])):
            while True:
                event = await next_event(socket)
                if event["type"] in ("token", "snapshot"):
                    stream.append(event)
                elif event["type"] == "done":
                    stream.append(event)
                    break
    texts = ["".join(e["text"] for e in stream if e["type"] != "done") for stream in streams]
    assert (
        texts[0] == texts[1] == streams[0][-1]["content"] == streams[1][-1]["content"] == REPLIES["<chat 3>"]
    )
