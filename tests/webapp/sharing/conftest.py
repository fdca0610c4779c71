"""Fixtures of the share link tests: Alice and a conversation of hers with two turns, and clients."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.chat.models import Conversation, Message


def person(username: str, **flags: object):
    return get_user_model().objects.create_user(username=username, password="a-long-Passw0rd!", **flags)


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice():
    return person("alice")


@pytest.fixture
def conversation(alice) -> Conversation:
    chat = Conversation.objects.create(owner=alice, title="Travel plans")
    for role, content in [
        ("user", "Where to go?"),
        ("assistant", "**Lisbon**"),
        ("user", "And then?"),
        ("assistant", "Porto"),
    ]:
        Message.objects.create(conversation=chat, role=role, content=content)
    return chat


@pytest.fixture
def logged_in(alice) -> Client:
    return client_of(alice)
