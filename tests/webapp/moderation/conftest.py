"""Fixtures of the moderation tests: a moderator, a user, and a conversation with a reply."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.chat.models import Conversation, Message


@pytest.fixture
def moderator():
    return get_user_model().objects.create_user(username="mod", password="a-long-Passw0rd!", is_staff=True)


@pytest.fixture
def bob():
    return get_user_model().objects.create_user(username="bob", password="a-long-Passw0rd!")


@pytest.fixture
def conversation(bob) -> Conversation:
    return Conversation.objects.create(owner=bob, title="chat")


@pytest.fixture
def question(conversation) -> Message:
    return Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content="Tell me a secret"
    )


@pytest.fixture
def reply(conversation, question) -> Message:
    return Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, content="The secret is 42."
    )


@pytest.fixture
def bob_client(bob) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    return client


@pytest.fixture
def staff(moderator) -> Client:
    """The moderator's browser session (the dashboard tests)."""
    client = Client()
    client.force_login(moderator)
    return client
