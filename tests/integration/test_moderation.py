"""Moderation through the real worker and websocket, with a scripted engine that says what we choose.

The claims: a blocked phrase never reaches any `token` event, wherever the
tokens split it, and the reply ends `blocked`; redaction replaces the span in
the stream and in storage; a rule added while the worker runs applies to the
next reply; staff get the unredacted text in the moderation events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_reply_stream import next_event
from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration

# Longer than the gate's 64-character hold-back before the phrase, so some of it streams first.
PLAN = (
    "Sure. Here is the whole plan, step by step, as you asked for it earlier today. "
    "First we gather the team, then we launch the missiles at dawn, and then we rest."
)
CONTACT = "You can write to jane.doe@example.com or call +33 6 12 34 56 78 today."
# The rule the moderated stacks load: the plan's phrase is blocked.
BLOCK_MISSILES = {
    "category": "violence_and_threats",
    "action": "block",
    "kind": "phrase",
    "pattern": "launch the missiles",
}
REPLIES = {"the plan": PLAN, "contact": CONTACT, "weather": "It is sunny and we gather the team outside."}


@pytest.fixture(scope="module")
def moderated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("moderated"))
    stack = Stack(
        tmp=tmp,
        extra_env={
            "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
            "SCRIPTED_REPLIES": json.dumps(REPLIES),
            # One event per token: the phrase is spread over many events.
            "STREAM_COALESCE_TOKENS": "1",
            "STREAM_COALESCE_MS": "0",
        },
    )
    stack.start()
    stack.import_rules([BLOCK_MISSILES])
    try:
        yield stack
    finally:
        stack.stop()


async def converse(stack: Stack, client: Client, content: str) -> tuple[list[dict], list[dict], dict]:
    """Send one message; the reply's token and moderation events, and its done."""
    conversation = client.new_conversation()
    tokens: list[dict] = []
    verdicts: list[dict] = []
    async with client.connect(conversation) as ws:
        await ws.send(json.dumps({"type": "send", "content": content, "params": {"max_tokens": 200}}))
        while True:
            event = await next_event(ws)
            if event["type"] == "token":
                tokens.append(event)
            elif event["type"] == "moderation":
                verdicts.append(event)
            elif event["type"] == "done":
                return tokens, verdicts, {**event, "conversation": conversation}


def staff_events(stack: Stack, message_id: str) -> list[dict]:
    code = (
        "import json; from webapp.moderation.models import ModerationEvent as E; "
        f"print(json.dumps(list(E.objects.filter(message_id='{message_id}').order_by('id')"
        ".values('hook', 'stage', 'action', 'categories', 'excerpt'))))"
    )
    return json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1])


async def test_a_blocked_phrase_never_reaches_the_socket(moderated: Stack) -> None:
    client = Client(moderated).signup()
    tokens, verdicts, done = await converse(moderated, client, "What is the plan?")
    streamed = "".join(t["text"] for t in tokens)
    assert len(tokens) > 5, "the reply should have streamed in pieces before the block"
    assert "missiles" not in streamed and "launch" not in streamed
    assert PLAN.startswith(streamed) and streamed.startswith("Sure.")
    assert done["status"] == "blocked" and done["content"] == streamed
    assert verdicts == [
        {
            "type": "moderation",
            "message_id": done["message_id"],
            "action": "block",
            "categories": ["violence_and_threats"],
            "text": None,
        }
    ]
    stored = moderated.stored_messages(done["conversation"])[-1]
    assert stored["status"] == "blocked" and stored["content"] == streamed
    (event,) = staff_events(moderated, done["message_id"])
    assert (
        event["action"] == "block"
        and event["stage"] == "stream"
        and "launch the missiles" in event["excerpt"]
    )


async def test_pii_is_redacted_in_the_stream_and_in_storage(moderated: Stack) -> None:
    client = Client(moderated).signup()
    tokens, verdicts, done = await converse(moderated, client, "How do I contact her?")
    streamed = "".join(t["text"] for t in tokens)
    assert done["status"] == "complete" and done["content"] == streamed
    assert "jane.doe@example.com" not in streamed and "12 34 56 78" not in streamed
    assert "[email]" in streamed and "[phone]" in streamed
    assert moderated.stored_messages(done["conversation"])[-1]["content"] == streamed
    assert {v["action"] for v in verdicts} == {"redact"} and all("pii" in v["categories"] for v in verdicts)
    assert any("jane.doe@example.com" in e["excerpt"] for e in staff_events(moderated, done["message_id"]))


async def test_pii_in_the_input_is_flagged_and_the_reply_goes_on(moderated: Stack) -> None:
    client = Client(moderated).signup()
    tokens, verdicts, done = await converse(moderated, client, "The weather for bob@example.org please")
    assert done["status"] == "complete" and "sunny" in done["content"]
    assert [v["action"] for v in verdicts] == ["flag"]
    (event,) = staff_events(moderated, done["message_id"])
    assert event["stage"] == "input" and "bob@example.org" in event["excerpt"]


async def test_a_rule_added_while_the_worker_runs_applies_to_the_next_reply(
    moderated: Stack, tmp_path: Path
) -> None:
    client = Client(moderated).signup()
    _, _, before = await converse(moderated, client, "How is the weather?")
    assert before["status"] == "complete" and "gather the team" in before["content"]
    rules = tmp_path / "more-rules.json"
    rules.write_text(
        json.dumps(
            [
                {
                    "category": "dangerous_and_criminal_content",
                    "action": "block",
                    "kind": "phrase",
                    "pattern": "gather the team",
                }
            ]
        )
    )
    moderated.manage("import_rules", str(rules))
    tokens, _, after = await converse(moderated, client, "How is the weather?")
    assert after["status"] == "blocked" and "gather" not in "".join(t["text"] for t in tokens)


def set_policy(stack: Stack, category: str, action: str, threshold: float) -> None:
    code = (
        "from webapp.moderation.models import CategoryPolicy as P; "
        f"P.objects.filter(category={category!r}).update(action={action!r}, threshold={threshold!r})"
    )
    stack.manage("shell", "-c", code)


async def test_a_policy_changed_while_the_worker_runs_applies_to_the_next_reply(moderated: Stack) -> None:
    client = Client(moderated).signup()
    try:
        set_policy(moderated, "pii", "block", 0.5)
        tokens, _, blocked = await converse(moderated, client, "contact")
        assert blocked["status"] == "blocked"
        assert "jane.doe" not in "".join(t["text"] for t in tokens)
        set_policy(moderated, "pii", "allow", 0.5)
        _, verdicts, allowed = await converse(moderated, client, "contact")
        assert allowed["status"] == "complete" and allowed["content"] == CONTACT
        assert verdicts == []  # allowed by policy: nothing to record
        set_policy(moderated, "pii", "redact", 1.0)  # the PII hook scores 1.0: still reached
        _, _, redacted = await converse(moderated, client, "contact")
        assert "jane.doe@example.com" not in redacted["content"] and "[email]" in redacted["content"]
    finally:
        set_policy(moderated, "pii", "redact", 0.5)


async def test_an_offensive_message_is_flagged_by_the_classifier_in_the_worker(moderated: Stack) -> None:
    client = Client(moderated).signup()
    # No trigger in it: the script's default reply, which no rule touches.
    _, verdicts, done = await converse(moderated, client, "Hey, you stupid b i t c h!")
    # A flag changes nothing the user sees.
    assert done["status"] == "complete" and done["content"] == "No script for that."
    # An insult aimed at no group: profanity (flagged by its seeded policy), not hate.
    assert [(v["action"], v["categories"]) for v in verdicts] == [("flag", ["profanity"])]
    (event,) = staff_events(moderated, done["message_id"])
    assert (event["hook"], event["stage"], event["action"]) == ("offensive", "input", "flag")
