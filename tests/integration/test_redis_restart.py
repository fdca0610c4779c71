"""Redis restarted mid-reply: Daphne and the worker reconnect by themselves, nothing stays stuck.

The test runs its own redis-server on a free port (never the shared one), with
no persistence, as a crashed or restarted Redis comes back: empty. The reply
that was running ends `complete` or `failed`, and the next message is served.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_reply_stream import collect_reply, next_event
from tests.support.stack import Client, Stack, free_port

pytestmark = pytest.mark.integration

LONG = " ".join(f"word{i}" for i in range(150))
SHORT = "Back again."
ENDED_WITHIN_S = 60


class PrivateRedis:
    """A redis-server of the test's own, started and restarted on one port."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed")
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout
            != b"PONG\n"
        ):
            assert time.monotonic() < deadline, "the private redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="module")
def redis_and_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrivateRedis, Stack]]:
    redis = PrivateRedis(Path(tmp_path_factory.mktemp("redis")))
    redis.start()
    stack = Stack(
        tmp=Path(tmp_path_factory.mktemp("redis-stack")),
        extra_env={
            "REDIS_URL": redis.url,
            "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
            "SCRIPTED_REPLIES": json.dumps({"again please": SHORT, "long please": LONG}),
            "SCRIPTED_DELAY_S": "0.03",
            # Short heartbeats: a dead worker's replies are swept within seconds.
            "WORKER_HEARTBEAT_S": "2",
            "DEFAULT_MAX_TOKENS": "2000",
        },
    )
    try:
        stack.start()
        yield redis, stack
    finally:
        stack.stop()
        redis.stop()


def wait_until_ended(stack: Stack, conversation: str) -> list[dict]:
    deadline = time.monotonic() + ENDED_WITHIN_S
    while True:
        stored = stack.stored_messages(conversation)
        if all(m["status"] not in {"queued", "streaming"} for m in stored):
            return stored
        assert time.monotonic() < deadline, f"a reply is stuck: {stored}\n{stack.logs()}"
        time.sleep(1)


async def test_redis_restarted_mid_reply(redis_and_stack: tuple[PrivateRedis, Stack]) -> None:
    redis, stack = redis_and_stack
    client = Client(stack).signup()
    conversation = client.new_conversation()
    async with client.connect(conversation) as ws:
        await ws.send(json.dumps({"type": "send", "content": "long please"}))
        await next_event(ws, "token")
        redis.stop()
        time.sleep(1)
        redis.start()

    stored = wait_until_ended(stack, conversation)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["status"] in {"complete", "failed"}
    if stored[1]["status"] == "complete":
        assert stored[1]["content"] == LONG

    # Both sides reconnect by themselves: a new socket, a new message, a whole reply.
    stack.wait_ready()
    deadline = time.monotonic() + ENDED_WITHIN_S
    while True:
        async with client.connect(conversation) as ws:
            await ws.send(json.dumps({"type": "send", "content": "again please"}))
            event = await next_event(ws)
            if event["type"] != "error":
                _, done = await collect_reply(ws)
                break
        assert time.monotonic() < deadline, f"the next message was refused: {event}"
    assert done["status"] == "complete" and done["content"] == SHORT
    assert stack.stored_messages(conversation)[-1]["status"] == "complete"
