"""A worker whose model cannot load: replies end `failed` with a readable reason, nothing is lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broken_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        tmp=Path(tmp_path_factory.mktemp("broken")), extra_env={"MODEL_PATH": "/nonexistent/mistral"}
    )
    stack.start(model_state="failed")
    try:
        yield stack
    finally:
        stack.stop()


def test_healthz_reports_the_failed_model(broken_stack: Stack) -> None:
    health = broken_stack.wait_ready("failed")
    (worker,) = health["workers"]
    assert worker["state"] == "failed" and "no such folder" in worker["error"]
    assert health["status"] == "degraded"


async def test_a_reply_fails_readably_and_the_question_is_kept(broken_stack: Stack) -> None:
    client = Client(broken_stack).signup()
    conversation = client.new_conversation()
    async with client.connect(conversation) as ws:
        await ws.send(json.dumps({"type": "send", "content": "Is anybody there?"}))
        while (event := json.loads(await asyncio.wait_for(ws.recv(), 60)))["type"] != "done":
            assert event["type"] in {"message", "start"}
    assert event["status"] == "failed" and event["content"] == ""
    assert "could not be loaded" in event["error"] and "/nonexistent/mistral" in event["error"]
    stored = broken_stack.stored_messages(conversation)
    assert [(m["role"], m["content"], m["status"]) for m in stored] == [
        ("user", "Is anybody there?", "complete"),
        ("assistant", "", "failed"),
    ]
