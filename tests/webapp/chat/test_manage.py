"""Managing conversations from the sidebar: rename, delete, the paginated list."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.chat import live
from webapp.chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(alice) -> Conversation:
    return Conversation.objects.create(owner=alice, title="Old title")


def test_rename_with_a_form_redirects_and_with_json_answers_json(logged_in: Client, conversation) -> None:
    response = logged_in.post(f"/c/{conversation.id}/rename/", {"title": "  Trip   to Lyon "})
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "Trip to Lyon"
    response = logged_in.post(
        f"/c/{conversation.id}/rename/", {"title": "Paris"}, HTTP_ACCEPT="application/json"
    )
    assert response.json() == {"title": "Paris"}


@pytest.mark.parametrize(
    ("title", "code"), [("", "empty_title"), ("   ", "empty_title"), ("x" * 201, "title_too_long")]
)
def test_bad_titles_are_refused_and_nothing_changes(
    logged_in: Client, conversation, title: str, code: str
) -> None:
    response = logged_in.post(
        f"/c/{conversation.id}/rename/", {"title": title}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400 and response.json()["code"] == code
    conversation.refresh_from_db()
    assert conversation.title == "Old title"


def test_a_missing_title_field_is_refused(logged_in: Client, conversation) -> None:
    response = logged_in.post(f"/c/{conversation.id}/rename/", {}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_title"


def test_rename_and_delete_are_post_only_with_csrf(alice, conversation) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(f"/c/{conversation.id}/rename/", {"title": "New"}).status_code == 403
    assert strict.post(f"/c/{conversation.id}/delete/").status_code == 403
    assert strict.get(f"/c/{conversation.id}/rename/").status_code == 405
    assert Conversation.objects.filter(id=conversation.id, title="Old title").exists()


def test_delete_asks_first_then_deletes_everything(logged_in: Client, conversation) -> None:
    Message.objects.create(conversation=conversation, role="user", content="hi")
    page = logged_in.get(f"/c/{conversation.id}/delete/")
    assert page.status_code == 200 and "cannot be undone" in page.content.decode()
    assert Conversation.objects.filter(id=conversation.id).exists()
    response = logged_in.post(f"/c/{conversation.id}/delete/")
    assert response.status_code == 302 and response["Location"] == "/c/"
    assert not Conversation.objects.filter(id=conversation.id).exists()
    assert not Message.objects.filter(conversation_id=conversation.id).exists()


def test_deleting_a_conversation_stops_its_reply(logged_in: Client, conversation) -> None:
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    logged_in.post(f"/c/{conversation.id}/delete/")
    assert live.stop_requested(reply.id)
    live.clear_reply(reply.id)


@pytest.mark.parametrize("path", ["rename/", "delete/"])
def test_somebody_elses_conversation_is_404(logged_in: Client, path: str) -> None:
    bob = get_user_model().objects.create_user(username="bob", password="x")
    theirs = Conversation.objects.create(owner=bob, title="Bob's")
    for target in (theirs.id, uuid.uuid4()):
        assert logged_in.post(f"/c/{target}/{path}", {"title": "mine now"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.title == "Bob's"


def test_the_list_is_paginated_newest_first(logged_in: Client, alice) -> None:
    for i in range(55):
        Conversation.objects.create(owner=alice, title=f"chat {i:02}")
    first = logged_in.get("/c/").content.decode()
    assert "chat 54" in first and "Page 1 of 2" in first and "All conversations…" in first
    second = logged_in.get("/c/?page=2").content.decode()
    assert "chat 04" in second and "chat 00" in second and "Page 2 of 2" in second
    assert logged_in.get("/c/?page=99").status_code == 200  # clamped to the last page
    assert logged_in.get("/c/?page=abc").status_code == 200
