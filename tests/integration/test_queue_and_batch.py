"""The worker's batch through the real stack: MAX_BATCH replies at once, the rest queued and told their place."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest

from tests.integration.test_reply_stream import collect_reply, next_event
from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration


def health(stack: Stack) -> dict:
    with urllib.request.urlopen(f"{stack.base_url}/healthz", timeout=5) as response:
        return json.load(response)


def test_healthz_reports_the_worker_heartbeat(stack: Stack) -> None:
    # The stack is shared: a heartbeat written while an earlier test's reply ran says so
    # until the next beat (WORKER_HEARTBEAT_S).
    deadline = time.monotonic() + 15
    while (body := health(stack))["workers"][0]["active"] and time.monotonic() < deadline:
        time.sleep(0.5)
    (worker,) = body["workers"]
    assert worker["state"] == "ready" and worker["model"] == "tiny-random-mistral"
    assert (worker["device"], worker["dtype"], worker["max_batch"]) == ("cpu", "float32", 4)
    assert worker["active"] == 0 and worker["queue_length"] == 0
    assert body["model"]["capacity"] == 4 and body["queue_length"] == 0
    # The paged engine's KV cache, idle: blocks there, none held.
    assert worker["kv_blocks_total"] > 0 and worker["kv_blocks_used"] == 0 and worker["kv_block_size"] == 16
    assert body["model"]["kv_blocks_total"] == worker["kv_blocks_total"]


async def test_replies_beyond_the_batch_wait_and_hear_their_place_move(stack: Stack) -> None:
    max_batch = int(stack.env["MAX_BATCH"])
    client = Client(stack).signup()
    conversations = [client.new_conversation() for _ in range(max_batch + 2)]
    sockets = [await client.connect(c).__aenter__() for c in conversations]
    try:
        starts = []
        for ws in sockets:
            await ws.send(
                json.dumps(
                    {"type": "send", "content": "Go on", "params": {"max_tokens": 4000, "temperature": 0}}
                )
            )
            await next_event(ws, "message")
            starts.append(await next_event(ws, "start"))
        # The first MAX_BATCH are decoding; the last two wait, with 0 and 1 before them
        # (once every earlier reply has been taken: the place is sent again as the queue moves).
        for ws in sockets[:max_batch]:
            await next_event(ws, "token")
        waiting = zip(sockets[max_batch:], starts[max_batch:], strict=True)
        places = [await latest_place(ws, start) for ws, start in waiting]
        assert places == [0, 1]
        # The heartbeat (every few seconds) shows the full batch and the queue.
        busy = await poll_health(stack, lambda body: body["model"]["state"] == "busy")
        assert busy["model"]["active"] == max_batch and busy["workers"][0]["queue_length"] >= 1
        assert busy["workers"][0]["kv_blocks_used"] > 0  # the replies decoding hold blocks

        # Stopping one frees its place: the first waiting reply starts, the second moves up.
        await sockets[0].send(json.dumps({"type": "stop"}))
        moved = await next_event(sockets[-1], "start")
        assert moved["queue_position"] == 0
        await next_event(sockets[max_batch], "token")

        for ws in sockets[1:]:
            await ws.send(json.dumps({"type": "stop"}))
        results = await asyncio.gather(*(collect_reply(ws) for ws in sockets))
    finally:
        for ws in sockets:
            await ws.close()
    for conversation, (_, done) in zip(conversations, results, strict=True):
        assert done["status"] == "stopped" and done["stats"]["queue_ms"] is not None
        assert stack.stored_messages(conversation)[-1]["content"] == done["content"]
    # The replies that waited spent longer in the queue than the ones taken at once.
    assert min(d["stats"]["queue_ms"] for _, d in results[max_batch:]) > max(
        d["stats"]["queue_ms"] for _, d in results[:max_batch]
    )


async def poll_health(stack: Stack, wanted, timeout: float = 15.0) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = await asyncio.to_thread(health, stack)
        if wanted(body) or loop.time() > deadline:
            return body
        await asyncio.sleep(0.5)


async def latest_place(ws, start: dict) -> int:
    """The place this socket was last told, waiting until no news is pending.

    Updates come from the worker and the first `start` from Daphne, so they may
    cross: a place only ever goes down, and the smallest one heard is current.
    """
    place = start["queue_position"]
    while True:
        try:
            event = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
        except TimeoutError:
            return place
        assert event["type"] == "start" and event["message_id"] == start["message_id"]
        place = min(place, event["queue_position"])
