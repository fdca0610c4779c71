"""Search over titles and messages, on whichever database the run uses (SQLite, and PostgreSQL in CI)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from webapp.chat.models import Conversation, Message
from webapp.chat.search import search_conversations

pytestmark = pytest.mark.django_db
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's full-text search")


@pytest.fixture
def alice():
    user = get_user_model().objects.create_user(username="alice", password="x")
    trip = Conversation.objects.create(owner=user, title="Planning a trip")
    Message.objects.create(conversation=trip, role="user", content="Which trains run from Paris to Lyon?")
    Message.objects.create(
        conversation=trip, role="assistant", content="Several TGV trains leave Paris daily."
    )
    code = Conversation.objects.create(owner=user, title="Python help")
    Message.objects.create(
        conversation=code, role="user", content="<script>alert('x')</script> sorting lists"
    )
    return user


def titles(hits) -> list[str]:
    return [hit.title for hit in hits]


def test_messages_and_titles_are_searched(alice) -> None:
    assert titles(search_conversations(alice, "Lyon")) == ["Planning a trip"]
    assert titles(search_conversations(alice, "python")) == ["Python help"]
    assert search_conversations(alice, "submarine") == []
    assert search_conversations(alice, "   ") == []


def test_every_word_must_match(alice) -> None:
    assert titles(search_conversations(alice, "paris lyon")) == ["Planning a trip"]
    assert search_conversations(alice, "paris sorting") == []


def test_snippets_are_escaped_and_highlighted(alice) -> None:
    (hit,) = search_conversations(alice, "sorting")
    assert "<mark>sorting</mark>" in hit.snippet
    # Escaped (PostgreSQL's ts_headline drops tag-like words; the portable search escapes them).
    assert "<script" not in hit.snippet and "alert(&#x27;x&#x27;)" in hit.snippet


def test_nobody_finds_another_persons_conversations(alice) -> None:
    bob = get_user_model().objects.create_user(username="bob", password="x")
    assert search_conversations(bob, "Lyon") == []


def test_hostile_queries_are_just_text(alice) -> None:
    for query in ["%", "_", "' OR 1=1 --", "\\", "lyon & | ! :*", "(((", "x" * 10_000]:
        search_conversations(alice, query)  # no error: a query is never syntax


@on_postgresql
def test_postgresql_matches_word_forms(alice) -> None:
    # Stemming: "train" finds "trains", "running" finds "run".
    assert titles(search_conversations(alice, "train")) == ["Planning a trip"]
    assert titles(search_conversations(alice, "running")) == ["Planning a trip"]


def test_the_search_page(alice) -> None:
    client = Client()
    client.force_login(alice)
    body = client.get("/c/search/", {"q": "Lyon"}).content.decode()
    assert "Planning a trip" in body and "<mark>Lyon</mark>" in body
    assert "Nothing matches." in client.get("/c/search/", {"q": "zebra"}).content.decode()
    assert Client().get("/c/search/", {"q": "Lyon"}).status_code == 302


def test_a_hit_on_another_version_says_so_and_links_to_show_it(alice) -> None:
    trip = Conversation.objects.get(owner=alice, title="Planning a trip")
    question = trip.messages.get(role="user")
    # A second version of the reply, now the one shown: the first is on another version.
    Message.objects.create(conversation=trip, parent=question, role="assistant", content="Buses are cheaper.")
    newest = trip.messages.latest("created_at")
    Conversation.objects.filter(pk=trip.pk).update(current_leaf=newest)
    [hit] = search_conversations(alice, "TGV")
    assert hit.on_path is False
    [hit] = search_conversations(alice, "Buses")
    assert hit.on_path is True
    client = Client()
    client.force_login(alice)
    page = client.get("/c/search/", {"q": "TGV"}).content.decode()
    assert "on another version" in page
    assert f"?show={trip.messages.get(content__startswith='Several').id}#m-" in page
