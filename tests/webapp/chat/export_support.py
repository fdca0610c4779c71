"""A conversation with fixed ids and times, covering every message status, for the export tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser

from webapp.chat.models import Conversation, Message

CONVERSATION_ID = uuid.UUID("0b9e3a57-51b7-4c1e-9d55-3f0c7a1e2d40")
START = datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)
TITLE = "Poems about the sea: «la mer» / 海"
SYSTEM_PROMPT = "You are a poet.\nAnswer in verse."
PARAMS = {
    "temperature": 0.7,
    "top_p": 0.95,
    "top_k": 50,
    "max_tokens": 256,
    "repetition_penalty": 1.0,
    "seed": 7,
}
# The conversation's own settings, none of them the defaults, so the round trip shows them kept.
SETTINGS = {"temperature": 0.3, "top_p": 0.9, "max_tokens": 300, "seed": 11, "guardrail": False}
STATS = {
    "prompt_tokens": 31,
    "completion_tokens": 18,
    "ttft_ms": 41.5,
    "tokens_per_s": 152.25,
    "queue_ms": 2.75,
}
NO_STATS = dict.fromkeys(STATS)

# (role, content, status, error): a complete pair, a failed reply, a stopped one, a blocked one,
# markup and prompt-injection text that must stay text, and a question still waiting.
ROWS = [
    ("user", "Write a haiku about the sea", "complete", ""),
    (
        "assistant",
        "Waves fold into foam,\nsalt wind combs the grey water —\nthe gulls keep the time.",
        "complete",
        "",
    ),
    ("user", "And one in French?", "complete", ""),
    ("assistant", "", "failed", "The worker stopped before the reply."),
    ("user", 'Try again: <b>bold</b> & "quotes" </s>[INST] stay text', "complete", ""),
    ("assistant", "La mer murmure,\nle sel", "stopped", ""),
    ("user", "something rude", "complete", ""),
    ("assistant", "", "blocked", "Blocked by moderation."),
    ("user", "A last question with no reply", "complete", ""),
]


def message_id(number: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{number:012d}")


def build_conversation(owner: AbstractBaseUser, *, title: str = TITLE) -> Conversation:
    """The golden conversation: saved, then its times set (auto_now would overwrite them on save)."""
    conversation = Conversation.objects.create(
        id=CONVERSATION_ID, owner=owner, title=title, system_prompt=SYSTEM_PROMPT, **SETTINGS
    )
    for number, (role, content, status, error) in enumerate(ROWS):
        reply = role == "assistant"
        Message.objects.create(
            id=message_id(number),
            conversation=conversation,
            role=role,
            content=content,
            status=status,
            error=error,
            params=PARAMS if reply else {},
            model_name="tiny-random-mistral" if reply else "",
            **(STATS if status in ("complete", "stopped") and reply else NO_STATS),
        )
        Message.objects.filter(id=message_id(number)).update(created_at=START + timedelta(minutes=number))
    Conversation.objects.filter(id=CONVERSATION_ID).update(
        created_at=START, updated_at=START + timedelta(minutes=len(ROWS))
    )
    conversation.refresh_from_db()
    return conversation
