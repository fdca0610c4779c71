"""Fixtures of the chat tests: a person, and a browser session logged in as them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def alice():
    return get_user_model().objects.create_user(username="alice", password="a-long-Passw0rd!")


@pytest.fixture
def logged_in(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client
