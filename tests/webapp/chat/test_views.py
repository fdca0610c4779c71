"""The chat pages: who may see what."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def test_pages_need_a_login() -> None:
    for path in ("/c/", f"/c/{uuid.uuid4()}/"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_new_conversation_is_post_only_and_redirects_to_it(logged_in: Client, alice) -> None:
    assert logged_in.get("/c/new/").status_code == 405
    response = logged_in.post("/c/new/")
    conversation = Conversation.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == f"/c/{conversation.id}/"


def test_the_page_shows_the_conversation_and_sidebar_newest_first(logged_in: Client, alice) -> None:
    older = Conversation.objects.create(owner=alice, title="older")
    newer = Conversation.objects.create(owner=alice, title="newer")
    Message.objects.create(conversation=older, role="user", content="<script>alert(1)</script>")
    older.save()  # bump: now the newest
    body = logged_in.get(f"/c/{older.id}/").content.decode()
    assert body.index(">older<") < body.index(">newer<")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body
    assert str(newer.id) in body


@pytest.mark.parametrize("kind", ["somebody else's", "unknown", "malformed"])
def test_other_peoples_and_unknown_conversations_are_404(logged_in: Client, kind: str) -> None:
    bob = get_user_model().objects.create_user(username="bob", password="x")
    ids = {
        "somebody else's": Conversation.objects.create(owner=bob, title="secret").id,
        "unknown": uuid.uuid4(),
        "malformed": "not-a-uuid",
    }
    response = logged_in.get(f"/c/{ids[kind]}/")
    assert response.status_code == 404 and b"secret" not in response.content


def test_root_redirects_to_the_conversations() -> None:
    assert Client().get("/")["Location"] == "/c/"
