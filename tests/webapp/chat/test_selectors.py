"""Reads: the prompt history a reply answers."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import prompt_history

pytestmark = pytest.mark.django_db


def conversation_with(*rows: tuple[str, str, str]) -> Message:
    owner = get_user_model().objects.create_user(username="u", password="x")
    conversation = Conversation.objects.create(owner=owner)
    for role, content, status in rows:
        Message.objects.create(conversation=conversation, role=role, content=content, status=status)
    return Message.objects.create(conversation=conversation, role="assistant", status="queued")


def test_alternating_turns_are_kept_in_order() -> None:
    reply = conversation_with(
        ("user", "a", "complete"), ("assistant", "b", "complete"), ("user", "c", "complete")
    )
    assert prompt_history(reply) == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]


def test_replies_without_text_drop_out_with_their_question() -> None:
    reply = conversation_with(
        ("user", "lost", "complete"),
        ("assistant", "", "failed"),
        ("user", "kept", "complete"),
        ("assistant", "partial", "stopped"),
        ("user", "blocked question", "complete"),
        ("assistant", "bad words", "blocked"),
        ("user", "last", "complete"),
    )
    assert prompt_history(reply) == [
        {"role": "user", "content": "kept"},
        {"role": "assistant", "content": "partial"},
        {"role": "user", "content": "last"},
    ]
