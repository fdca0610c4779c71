"""The tree through real Daphne, a real worker and Redis: versions are kept, the prompt is the path
being continued, and a switch in one tab moves the other."""

from __future__ import annotations

import json

import pytest

from inference.chat_template import encode_chat
from tests.integration.test_reply_stream import collect_reply, next_event
from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration
PARAMS = {"max_tokens": 6, "temperature": 0, "seed": 3}


def turns(*texts: str) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[n % 2], "content": text} for n, text in enumerate(texts)]


async def ask(ws, event: dict) -> dict:
    """Send a send/regenerate/edit and wait for its reply's `done` (it must have text to be a turn)."""
    await ws.send(json.dumps({**event, "params": PARAMS}))
    start = await next_event(ws, "start")
    _, done = await collect_reply(ws)
    assert done["message_id"] == start["message_id"] and done["status"] == "complete" and done["content"]
    return done


async def test_versions_prompts_and_a_switch_across_tabs(stack: Stack) -> None:
    client = Client(stack).signup()
    conversation = client.new_conversation()
    async with client.connect(conversation) as tab, client.connect(conversation) as other_tab:
        # No guardrail prompt: the prompt is then exactly the turns of the path.
        await tab.send(json.dumps({"type": "settings", "settings": {"guardrail": False}}))
        await next_event(tab, "settings")
        a1 = await ask(tab, {"type": "send", "content": "first question"})
        a1b = await ask(tab, {"type": "regenerate"})
        assert a1b["message_id"] != a1["message_id"]
        a2 = await ask(tab, {"type": "send", "content": "second question"})
        path = turns("first question", a1b["content"], "second question")
        assert a2["stats"]["prompt_tokens"] == len(encode_chat(path))

        # Back to the first version, in one tab: both follow.
        await tab.send(json.dumps({"type": "switch", "message_id": a1["message_id"]}))
        for socket in (tab, other_tab):
            shown = await next_event(socket, "path")
            assert [m["id"] for m in shown["messages"]][1] == a1["message_id"]
            assert (shown["messages"][1]["sibling_index"], shown["messages"][1]["sibling_count"]) == (0, 2)

        # The other tab continues the path now shown: the prompt is that path, not the newest messages.
        a3 = await ask(other_tab, {"type": "send", "content": "third question"})
        path = turns("first question", a1["content"], "third question")
        assert a3["stats"]["prompt_tokens"] == len(encode_chat(path))

    stored = stack.stored_messages(conversation)
    assert len(stored) == 7  # q1, a1, a1b, q2, a2, q3, a3: nothing was deleted
    assert {m["id"] for m in stored} >= {a1["message_id"], a1b["message_id"], a2["message_id"]}
