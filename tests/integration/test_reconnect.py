"""A client that drops and reconnects at random points, many times, mid-reply (docs/protocol.md).

After each reconnect it gets a `snapshot` (the reply is live) or, having asked
with `resume`, the `done` it missed; then the live tail. Put together, the
text has nothing twice and nothing missing: it equals the `done` content and
the stored reply.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
import websockets

from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration

RECONNECTS = 20
TIMEOUT = 60


class Follower:
    """What a page keeps of one reply: the text so far and the last `seq` it holds."""

    def __init__(self, reply_id: str) -> None:
        self.reply_id = reply_id
        self.seq = 0
        self.text = ""
        self.done: dict | None = None
        self.snapshots = 0

    def take(self, event: dict) -> None:
        if event.get("message_id") != self.reply_id:
            return
        if event["type"] == "snapshot":
            # The snapshot holds all we had and maybe more: never less, never different.
            assert event["seq"] >= self.seq and event["text"].startswith(self.text), (event, self.text)
            self.seq, self.text = event["seq"], event["text"]
            self.snapshots += 1
        elif event["type"] == "token":
            assert event["seq"] == self.seq + 1, (
                f"token {event['seq']} after {self.seq}: one lost or repeated"
            )
            self.seq, self.text = event["seq"], self.text + event["text"]
        elif event["type"] == "done":
            self.done = event


async def read_for(ws: websockets.ClientConnection, follower: Follower, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while follower.done is None and (left := deadline - time.monotonic()) > 0:
        try:
            follower.take(json.loads(await asyncio.wait_for(ws.recv(), left)))
        except TimeoutError:
            return


async def test_random_drops_and_reconnects_lose_and_repeat_nothing(stack: Stack) -> None:
    rng = random.Random(7)
    client = Client(stack).signup()
    conversation = client.new_conversation()
    ws = await client.connect(conversation)
    await ws.send(
        json.dumps(
            {"type": "send", "content": "Tell a long story.", "params": {"max_tokens": 500, "seed": 11}}
        )
    )
    while (event := json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))["type"] != "start":
        pass
    follower = Follower(event["message_id"])
    drops_mid_reply = 0
    try:
        for _ in range(RECONNECTS):
            await read_for(ws, follower, rng.uniform(0.0, 0.15))
            if follower.done is not None:
                break
            drops_mid_reply += 1
            await ws.close()
            ws = await client.connect(conversation)
            # Sent every time, as the page does: a reply that ended meanwhile answers with its `done`.
            await ws.send(json.dumps({"type": "resume", "message_id": follower.reply_id}))
        await read_for(ws, follower, TIMEOUT)
    finally:
        await ws.close()

    assert drops_mid_reply >= 5, "the reply ended before the drops could test anything"
    assert follower.snapshots >= 1, "no reconnect got a snapshot"
    assert follower.done is not None and follower.done["status"] == "complete"
    assert follower.text == follower.done["content"]
    (stored,) = [m for m in stack.stored_messages(conversation) if m["role"] == "assistant"]
    assert stored["content"] == follower.text
