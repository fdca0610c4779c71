"""Frames no browser sends, through the real Daphne: invalid UTF-8 in a text frame, binary frames, huge frames.

Channels' test communicator cannot send what Daphne's websocket layer refuses
before the consumer sees it; this goes over a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import websockets

from tests.integration.test_reply_stream import next_event
from tests.support.stack import Client, Stack
from webapp.chat.consumers import max_frame_bytes

pytestmark = pytest.mark.integration


def daphne_logs(stack: Stack) -> dict:
    return {log: log.stat().st_size for log in stack.tmp.glob("daphne*.log")}


def assert_no_server_error(logs: dict) -> None:
    for log, size in logs.items():  # what Daphne logged during this test only: the stack is shared
        assert "Traceback" not in log.read_bytes()[size:].decode(errors="replace"), "a server error"


async def send_and_expect_close(ws: websockets.ClientConnection, frame: object) -> tuple[dict, object]:
    """Send a frame over the limit: the answer (an `error` event), then the close frame received."""
    with contextlib.suppress(websockets.ConnectionClosed):  # closed before the client wrote it all
        await asyncio.wait_for(ws.send(frame), 60)
    answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 30)
    return answer, closed.value.rcvd


async def test_invalid_utf8_closes_cleanly_binary_gets_an_error_and_others_are_served(stack: Stack) -> None:
    logs = daphne_logs(stack)
    client = Client(stack).signup()
    conversation = client.new_conversation()
    bystander = Client(stack).signup()
    theirs = bystander.new_conversation()
    async with bystander.connect(theirs) as serving:
        async with client.connect(conversation) as ws:
            await ws.send(b"\x00\xff binary", text=False)
            answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert answer["type"] == "error" and answer["code"] == "invalid_frame"
            # Text frames must be UTF-8: Daphne's websocket layer (autobahn, failByDrop) drops
            # the connection at once; the consumer never sees the frame, and nothing fails.
            await ws.send(b'{"type": "send", "content": "\xc3\x28"}', text=True)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 30)
            assert closed.value.rcvd is None or closed.value.rcvd.code == 1007

        await serving.send(
            json.dumps({"type": "send", "content": "Still there?", "params": {"max_tokens": 4}})
        )
        assert (await next_event(serving, "done"))["status"] == "complete"
    assert stack.stored_messages(conversation) == []
    assert_no_server_error(logs)


async def test_a_2mb_frame_gets_frame_too_large_then_a_close_1009_with_a_reason(stack: Stack) -> None:
    logs = daphne_logs(stack)
    client = Client(stack).signup()
    conversation = client.new_conversation()
    huge = json.dumps({"type": "send", "content": "x" * 2_000_000})
    async with client.connect(conversation) as ws:
        answer, close = await send_and_expect_close(ws, huge)
    assert answer["type"] == "error" and answer["code"] == "frame_too_large", answer
    assert f"the limit is {max_frame_bytes()}" in answer["message"]
    # A close frame, not a dropped connection (websockets reports that as no close received).
    assert close is not None and close.code == 1009 and "too large" in close.reason

    # The same 2 MB as a fragmented message, 64 KiB a frame: refused once the total is over.
    chunks = [huge[i : i + 65536] for i in range(0, len(huge), 65536)]
    async with client.connect(conversation) as ws:
        answer, close = await send_and_expect_close(ws, chunks)
    assert answer["code"] == "frame_too_large"
    assert close is not None and close.code == 1009

    async with client.connect(conversation) as ws:  # and the person goes on chatting
        await ws.send(json.dumps({"type": "send", "content": "Still there?", "params": {"max_tokens": 4}}))
        assert (await next_event(ws, "done"))["status"] == "complete"
    assert [m["content"] for m in stack.stored_messages(conversation)][:1] == ["Still there?"]
    assert_no_server_error(logs)


async def test_the_largest_valid_frame_passes_daphne_and_the_consumer(stack: Stack) -> None:
    logs = daphne_logs(stack)
    client = Client(stack).signup()
    conversation = client.new_conversation()
    # MAX_MESSAGE_CHARS (the stack's default, 20,000) characters, every one escaped as a
    # surrogate pair (12 bytes), and every parameter: the largest frame a valid `send` makes.
    params = {
        "temperature": 0.7,
        "top_p": 1.0,
        "top_k": 40,
        "max_tokens": 4,
        "repetition_penalty": 1.0,
        "seed": 1,
    }
    frame = json.dumps({"type": "send", "content": "\U0001f600" * 20_000, "params": params})
    assert len(frame) > 20_000 * 12 and frame.isascii()
    async with client.connect(conversation) as ws:
        await ws.send(frame)
        # Read whole, checked and stored (20,000 tokens: the emoji is one token), and answered.
        answer = json.loads(await asyncio.wait_for(ws.recv(), 60))
        assert answer["type"] == "message" and answer["message"]["content"] == "\U0001f600" * 20_000
        assert (await next_event(ws, "done"))["status"] == "complete"
    assert_no_server_error(logs)
