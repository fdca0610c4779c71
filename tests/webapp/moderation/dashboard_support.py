"""Rows for the dashboard tests: moderation events and reports at chosen times."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.contrib.auth import get_user_model

from webapp.chat.models import Conversation, Message
from webapp.moderation.models import ModerationEvent, Report


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    """A cheap password hasher: these tests make many users and never test passwords.

    Imported by each dashboard test module; autouse fixtures run before the user fixtures.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_event(
    reply: Message,
    *,
    at: datetime | None = None,
    action: str = "flag",
    categories: tuple[str, ...] = ("violence_and_threats",),
    hook: str = "rules",
    stage: str = "output",
    latency_ms: float = 1.0,
    excerpt: str = "",
    status: str = "open",
) -> ModerationEvent:
    event = ModerationEvent.objects.create(
        message=reply,
        user_id=reply.conversation.owner_id,
        hook=hook,
        stage=stage,
        action=action,
        categories=list(categories),
        category=categories[0] if categories else "",
        latency_ms=latency_ms,
        excerpt=excerpt,
        status=status,
    )
    if at is not None:  # created_at is auto_now_add: set the time afterwards
        ModerationEvent.objects.filter(pk=event.pk).update(created_at=at)
        event.refresh_from_db()
    return event


def make_report(reply: Message, reporter, *, at: datetime | None = None, reason: str = "harmful") -> Report:
    report = Report.objects.create(reporter=reporter, message=reply, reason=reason, detail="not nice")
    if at is not None:
        Report.objects.filter(pk=report.pk).update(created_at=at)
        report.refresh_from_db()
    return report


def make_exchange(owner, question: str = "a question", answer: str = "an answer") -> Message:
    """A new conversation of `owner` with one question and its reply; returns the reply."""
    conversation = Conversation.objects.create(owner=owner)
    Message.objects.create(conversation=conversation, role=Message.Role.USER, content=question)
    return Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, content=answer)


def make_person(name: str, *, staff: bool = False):
    return get_user_model().objects.create_user(username=name, password="a-long-Passw0rd!", is_staff=staff)
