"""The clients' side of bench/stack.py: N people chatting on a stack, each on a websocket of their own.

Each chat sends its message, reads its reply up to `done`, and, for
`rounds` > 1, sends the next one as soon as that `done` arrives (after
`think_s`): a closed loop, so that after the first round's burst the sends
arrive as replies end, the way a busy server sees them.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import websockets

from bench.common import cpu_seconds
from tests.support.stack import Client, Stack

REPLY_TIMEOUT_S = 120.0  # no event for this long: the reply is lost
DRAIN_S = 0.5


@dataclass
class Reply:
    """One client's view of one reply."""

    round: int = 0  # 0 for the first message of its chat
    max_tokens: int = 0  # the send's limit: a reply of a longer script ends there
    sent: float = 0.0
    started: float | None = None  # the `start` event: the reply is stored and queued
    queue_ms: float | None = None  # from `done`'s stats: queued -> taken by a worker
    worker_ttft_ms: float | None = None  # from `done`'s stats: taken -> first id from the engine
    first: float | None = None
    done: float | None = None
    message_id: str | None = None
    status: str | None = None
    completion_tokens: int = 0
    streamed: str = ""
    content: str | None = None
    last_seq: int = 0
    bad_seq: int = 0
    strays: int = 0  # a `token` or `done` of this chat's earlier reply, or one after this reply's `done`


@dataclass
class Tree:
    """One checkout's stack and its signed-up people."""

    label: str
    stack: Stack
    people: list[Client] = field(default_factory=list)
    step_s: float = 0.0
    # Each Daphne of the stack: its port and process (the sockets take them in turn).
    daphnes: list[tuple[int, subprocess.Popen]] = field(default_factory=list)


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def all_live_rate(chats: list[list[Reply]]) -> float | None:
    """Tokens a second delivered while every chat still had a reply to come: from the first send
    to the first chat's last `done`. A reply streams at an even pace from its first token to its
    `done`, so one that straddles the end counts the share of its tokens before it. With replies
    of different lengths, the chats that end early leave the rest streaming alone at the end, and
    the whole run's rate counts that tail; this is the rate of the N chats at once. None when a
    chat's reply was lost."""
    ends = [replies[-1].done for replies in chats if replies]
    if not ends or None in ends:
        return None
    begin, end = min(r.sent for replies in chats for r in replies), min(ends)
    tokens = 0.0
    for reply in (r for replies in chats for r in replies):
        if reply.first is None or reply.done is None or reply.first >= end:
            continue
        share = 1.0 if reply.done <= end else (end - reply.first) / (reply.done - reply.first)
        tokens += reply.completion_tokens * share
    return tokens / (end - begin) if end > begin else None


async def receive(socket: websockets.ClientConnection, reply: Reply, earlier: set[str] = frozenset()) -> None:
    """Read the reply to the message just sent, up to its `done`; `earlier`: the chat's ended replies."""
    try:
        while True:
            event = json.loads(await asyncio.wait_for(socket.recv(), REPLY_TIMEOUT_S))
            kind = event["type"]
            if kind == "error":
                print(f"refused: {event}", file=sys.stderr)
                return
            if kind in {"token", "done"} and event["message_id"] in earlier:
                reply.strays += 1
            elif kind == "start":
                reply.message_id = reply.message_id or event["message_id"]
                reply.started = reply.started or time.perf_counter()
            elif kind == "token" and event["message_id"] == reply.message_id:
                reply.first = reply.first or time.perf_counter()
                reply.bad_seq += event["seq"] != reply.last_seq + 1
                reply.last_seq = event["seq"]
                reply.streamed += event["text"]
            elif kind == "done" and event["message_id"] == reply.message_id:
                reply.done = time.perf_counter()
                reply.status, reply.content = event["status"], event["content"]
                reply.completion_tokens = event["stats"]["completion_tokens"] or 0
                reply.queue_ms, reply.worker_ttft_ms = event["stats"]["queue_ms"], event["stats"]["ttft_ms"]
                return
    except (TimeoutError, websockets.ConnectionClosed) as failure:
        print(f"lost a reply: {failure!r}", file=sys.stderr)


async def drain(socket: websockets.ClientConnection, reply: Reply) -> None:
    """A second `done`, or any `token`, for a finished reply would arrive now."""
    try:
        while True:
            event = json.loads(await asyncio.wait_for(socket.recv(), DRAIN_S))
            reply.strays += event["type"] in {"done", "token"}
    except (TimeoutError, websockets.ConnectionClosed):
        pass


async def open_chat(person: Client, port: int) -> tuple[str, websockets.ClientConnection]:
    """A new conversation of this person's, and a websocket on it through the Daphne at `port`."""
    conversation = person.new_conversation()
    url = f"ws://127.0.0.1:{port}/ws/conversations/{conversation}/"
    socket = await websockets.connect(
        url, additional_headers=person.socket_headers(), max_size=None, open_timeout=60
    )
    return conversation, socket


def send_event(prompt: str, max_tokens: int) -> str:
    return json.dumps({"type": "send", "content": prompt, "params": {"max_tokens": max_tokens}})


async def chat(
    socket: websockets.ClientConnection,
    prompt: str,
    *,
    max_tokens: Callable[[int], int],
    delay_s: float,
    rounds: int,
    think_s: float,
) -> list[Reply]:
    """One chat: `rounds` messages, each sent when the reply to the one before is done;
    `max_tokens(round)` is each message's limit."""
    replies: list[Reply] = []
    if delay_s:
        await asyncio.sleep(delay_s)
    for number in range(rounds):
        if number and think_s:
            await asyncio.sleep(think_s)
        reply = Reply(round=number, max_tokens=max_tokens(number))
        earlier = {r.message_id for r in replies if r.message_id}
        replies.append(reply)
        message = send_event(prompt, reply.max_tokens)
        reply.sent = time.perf_counter()
        await socket.send(message)
        await receive(socket, reply, earlier)
        if reply.done is None:
            break  # lost: this chat sends nothing more
    return replies


async def converse(
    tree: Tree,
    chats: int,
    max_tokens: int | Callable[[int, int], int],
    prompt: str,
    *,
    spread_s: float = 0.0,
    daphnes: int = 1,
    rounds: int = 1,
    think_s: float = 0.0,
    on_send: Callable[[], None] = lambda: None,
) -> tuple[list[list[Reply]], tuple[str, ...], dict[str, float]]:
    """N sockets, one conversation each, on the first `daphnes` Daphnes in turn, send at once (or
    spread over `spread_s`), `rounds` messages each; CPU read right before the first send and
    after the last `done`; `on_send` is called just before the first send. Each chat's replies.

    `max_tokens`: every message's limit, or a function of (chat, round) giving each its own."""
    limit = max_tokens if callable(max_tokens) else (lambda _chat, _round: max_tokens)
    used = tree.daphnes[:daphnes]
    # One by one: Daphne drops a handshake its consumer has not accepted within 5 s.
    opened = [await open_chat(person, used[i % len(used)][0]) for i, person in enumerate(tree.people[:chats])]
    conversations, sockets = zip(*opened, strict=True)
    daphne_pids = [process.pid for _, process in used]
    on_send()
    before = cpu_seconds(tree.stack.worker.pid), [cpu_seconds(pid) for pid in daphne_pids], client_cpu()
    chats_replies = await asyncio.gather(
        *(
            chat(
                socket,
                prompt,
                max_tokens=lambda number, i=i: limit(i, number),
                delay_s=spread_s * i / chats,
                rounds=rounds,
                think_s=think_s,
            )
            for i, socket in enumerate(sockets)
        )
    )
    after = cpu_seconds(tree.stack.worker.pid), [cpu_seconds(pid) for pid in daphne_pids], client_cpu()
    cpu = {
        "worker": cpu_spent(before[0], after[0]),
        "daphne": sum(cpu_spent(b, a) for b, a in zip(before[1], after[1], strict=True)),
        "client": after[2] - before[2],
    }
    await asyncio.gather(*(drain(s, r[-1]) for s, r in zip(sockets, chats_replies, strict=True)))
    await asyncio.gather(*(s.close() for s in sockets))
    return list(chats_replies), conversations, cpu
