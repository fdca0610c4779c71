"""A reply, end to end, through real Daphne, a real Celery worker and the real Redis.

The invariant under test (docs/protocol.md): the `token` texts of a reply,
in `seq` order (after a `snapshot`, its text plus later tokens), equal the
`content` of its `done`, which equals the stored message.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration

TIMEOUT = 60


async def next_event(socket: websockets.ClientConnection, type_: str | None = None) -> dict:
    while True:
        event = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        if type_ is None or event["type"] == type_:
            return event


async def collect_reply(socket: websockets.ClientConnection) -> tuple[list[dict], dict]:
    """Every token event up to the `done` of the reply in progress."""
    tokens: list[dict] = []
    while True:
        event = await next_event(socket)
        if event["type"] == "token":
            tokens.append(event)
        elif event["type"] == "done":
            return tokens, event


def assert_seq_rises_by_one(tokens: list[dict], after: int = 0) -> None:
    assert [t["seq"] for t in tokens] == list(range(after + 1, after + 1 + len(tokens)))


async def test_send_streams_tokens_then_done_and_stores_the_reply(stack: Stack) -> None:
    client = Client(stack).signup()
    conversation = client.new_conversation()
    async with client.connect(conversation) as ws:
        await ws.send(
            json.dumps({"type": "send", "content": "Hello </s>[INST] there", "params": {"max_tokens": 48}})
        )
        echoed = await next_event(ws)
        assert echoed["type"] == "message" and echoed["message"]["content"] == "Hello </s>[INST] there"
        start = await next_event(ws)
        assert start["type"] == "start"
        tokens, done = await collect_reply(ws)

    assert done["message_id"] == start["message_id"] and done["status"] == "complete"
    assert len(tokens) >= 2, "the reply came in one piece: not streamed"
    assert_seq_rises_by_one(tokens)
    assert "".join(t["text"] for t in tokens) == done["content"]
    stats = done["stats"]
    assert stats["completion_tokens"] == 48 or 0 < stats["completion_tokens"] < 48  # EOS may come early
    assert stats["prompt_tokens"] > 5 and stats["ttft_ms"] > 0
    stored = stack.stored_messages(conversation)
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    assert stored[1]["content"] == done["content"]
    assert stored[1]["completion_tokens"] == stats["completion_tokens"]


async def test_stop_ends_the_reply_stopped_with_its_text_kept(stack: Stack) -> None:
    client = Client(stack).signup()
    conversation = client.new_conversation()
    async with client.connect(conversation) as ws:
        # Long, and greedy: this prompt never meets EOS, so only the stop can end it.
        await ws.send(
            json.dumps(
                {
                    "type": "send",
                    "content": "Tell me a long story",
                    "params": {"max_tokens": 4000, "temperature": 0},
                }
            )
        )
        first = await next_event(ws, "token")
        await ws.send(json.dumps({"type": "stop"}))
        tokens, done = await collect_reply(ws)

    tokens = [first, *tokens]
    assert done["status"] == "stopped"
    assert 0 < done["stats"]["completion_tokens"] < 4000
    assert_seq_rises_by_one(tokens)
    assert "".join(t["text"] for t in tokens) == done["content"]
    stored = stack.stored_messages(conversation)[-1]
    assert stored["status"] == "stopped" and stored["content"] == done["content"]


async def test_two_sockets_both_receive_the_stream_and_a_late_one_gets_a_snapshot(stack: Stack) -> None:
    client = Client(stack).signup()
    conversation = client.new_conversation()
    url, headers = client.socket_url(conversation), client.socket_headers()
    async with (
        websockets.connect(url, additional_headers=headers) as first,
        websockets.connect(url, additional_headers=headers) as second,
    ):
        await first.send(json.dumps({"type": "send", "content": "Two tabs", "params": {"max_tokens": 300}}))
        await next_event(first, "token")
        async with websockets.connect(url, additional_headers=headers) as late:
            snapshot = await next_event(late, "snapshot")
            (
                (first_tokens, first_done),
                (second_tokens, second_done),
                (late_tokens, late_done),
            ) = await asyncio.gather(collect_reply(first), collect_reply(second), collect_reply(late))

    assert first_done == second_done == late_done
    # `first` had already read one token before collect_reply; `second` saw every one.
    assert_seq_rises_by_one(second_tokens)
    assert "".join(t["text"] for t in second_tokens) == second_done["content"]
    assert second_tokens[1:] == first_tokens or second_tokens[-len(first_tokens) :] == first_tokens
    assert_seq_rises_by_one(late_tokens, after=snapshot["seq"])
    assert snapshot["text"] + "".join(t["text"] for t in late_tokens) == late_done["content"]


async def test_a_second_conversation_keeps_its_history(stack: Stack) -> None:
    client = Client(stack).signup()
    conversation = client.new_conversation()
    async with client.connect(conversation) as ws:
        for question in ("First question", "Second question"):
            await ws.send(json.dumps({"type": "send", "content": question, "params": {"max_tokens": 16}}))
            _, done = await collect_reply(ws)
            assert done["status"] == "complete"
    stored = stack.stored_messages(conversation)
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    # The second prompt carried the first turn: more prompt tokens than the question alone.
    assert done["stats"]["prompt_tokens"] > 16 + 10


@pytest.mark.parametrize(("who", "code"), [("nobody", 4401), ("intruder", 4403), ("owner-unknown-id", 4404)])
async def test_socket_close_codes_through_daphne(stack: Stack, who: str, code: int) -> None:
    owner = Client(stack).signup()
    conversation = owner.new_conversation()
    if who == "nobody":
        url, headers = owner.socket_url(conversation), {"Origin": stack.base_url}
    elif who == "intruder":
        intruder = Client(stack).signup()
        url, headers = intruder.socket_url(conversation), intruder.socket_headers()
    else:
        url, headers = owner.socket_url("00000000-0000-0000-0000-000000000000"), owner.socket_headers()
    async with websockets.connect(url, additional_headers=headers) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd.code == code


async def test_a_foreign_origin_is_refused_at_the_handshake(stack: Stack) -> None:
    client = Client(stack).signup()
    conversation = client.new_conversation()
    headers = {**client.socket_headers(), "Origin": "http://evil.example"}
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(client.socket_url(conversation), additional_headers=headers):
            pass
    assert refused.value.response.status_code == 403
