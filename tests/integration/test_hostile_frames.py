"""Frames no browser sends, through the real Daphne: invalid UTF-8 in a text frame, binary frames.

Channels' test communicator cannot send what Daphne's websocket layer refuses
before the consumer sees it; this goes over a real socket.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.integration.test_reply_stream import next_event
from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration


async def test_invalid_utf8_closes_cleanly_binary_gets_an_error_and_others_are_served(stack: Stack) -> None:
    logs = {log: log.stat().st_size for log in stack.tmp.glob("daphne*.log")}
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
    for log, size in logs.items():  # what Daphne logged during this test only: the stack is shared
        assert "Traceback" not in log.read_bytes()[size:].decode(errors="replace"), "a server error"
