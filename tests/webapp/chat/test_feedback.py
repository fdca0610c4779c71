"""👍/👎 on replies: set, change, take back; bad input changes nothing; a reply you cannot see is 404."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.chat.models import Conversation, Feedback, Message
from webapp.moderation.models import HiddenReply

pytestmark = pytest.mark.django_db


@pytest.fixture
def exchange(alice) -> tuple[Message, Message]:
    conversation = Conversation.objects.create(owner=alice)
    question = Message.objects.create(conversation=conversation, role="user", content="q")
    reply = Message.objects.create(conversation=conversation, role="assistant", content="a")
    return question, reply


def url(message: Message) -> str:
    return f"/c/{message.conversation_id}/m/{message.id}/feedback/"


def post(client: Client, message: Message, body: object, **headers: str):
    return client.post(url(message), json.dumps(body), content_type="application/json", **headers)


def test_rate_change_and_take_back(logged_in: Client, alice, exchange) -> None:
    _, reply = exchange
    assert logged_in.get(url(reply)).json() == {"rating": None, "reasons": [], "comment": ""}
    answer = post(
        logged_in, reply, {"rating": "down", "reasons": ["incorrect", "incorrect"], "comment": " wrong "}
    )
    assert answer.status_code == 200
    assert answer.json() == {"rating": "down", "reasons": ["incorrect"], "comment": "wrong"}
    assert post(logged_in, reply, {"rating": "up"}).json()["rating"] == "up"
    stored = Feedback.objects.get()
    assert (stored.user, stored.message, stored.rating, stored.reasons) == (alice, reply, "up", [])
    assert logged_in.get(url(reply)).json()["rating"] == "up"
    assert post(logged_in, reply, {"rating": None}).json()["rating"] is None
    assert not Feedback.objects.exists()


def test_the_page_shows_my_rating(logged_in: Client, exchange) -> None:
    _, reply = exchange
    post(logged_in, reply, {"rating": "up"})
    page = logged_in.get(f"/c/{reply.conversation_id}/").content.decode()
    assert 'data-rating="up"' in page and "js/feedback.js" in page


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"rating": "meh"}, "invalid_rating"),
        ({"rating": 1}, "invalid_rating"),
        ({"rating": "up", "reasons": "helpful"}, "invalid_reasons"),
        ({"rating": "up", "reasons": ["<script>"]}, "invalid_reasons"),
        ({"rating": "up", "reasons": [3]}, "invalid_reasons"),
        ({"rating": "up", "comment": "x" * 1001}, "comment_too_long"),
        ({"rating": "up", "comment": "nul \x00"}, "invalid_comment"),
        ({"rating": "up", "comment": ["x"]}, "invalid_comment"),
        (["up"], "invalid_feedback"),
    ],
)
def test_bad_feedback_is_refused_and_changes_nothing(logged_in: Client, exchange, body, code) -> None:
    _, reply = exchange
    post(logged_in, reply, {"rating": "down"})
    answer = post(logged_in, reply, body)
    assert answer.status_code == 400 and answer.json()["code"] == code and answer.json()["message"]
    assert Feedback.objects.get().rating == "down"


def test_malformed_json_and_a_user_message_are_refused(logged_in: Client, exchange) -> None:
    question, reply = exchange
    answer = logged_in.post(url(reply), "{not json", content_type="application/json")
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_feedback"
    answer = post(logged_in, question, {"rating": "up"})
    assert answer.status_code == 400 and answer.json()["code"] == "not_a_reply"
    assert not Feedback.objects.exists()


def test_a_reply_you_cannot_see_is_404(logged_in: Client, alice, exchange) -> None:
    _, reply = exchange
    stranger = get_user_model().objects.create_user(username="stranger", password="x" * 12)
    theirs = Conversation.objects.create(owner=stranger)
    their_reply = Message.objects.create(conversation=theirs, role="assistant", content="theirs")
    assert post(logged_in, their_reply, {"rating": "up"}).status_code == 404
    assert logged_in.get(url(their_reply)).status_code == 404
    # Their message under my conversation's id, and a malformed id: 404 as well.
    assert (
        logged_in.post(
            f"/c/{reply.conversation_id}/m/{their_reply.id}/feedback/", "{}", content_type="application/json"
        ).status_code
        == 404
    )
    assert logged_in.get(f"/c/{reply.conversation_id}/m/nope/feedback/").status_code == 404
    HiddenReply.objects.create(message=reply, hidden_by=stranger)
    assert post(logged_in, reply, {"rating": "up"}).status_code == 404
    assert not Feedback.objects.exists()


def test_feedback_needs_a_login_and_the_csrf_token(alice, exchange) -> None:
    _, reply = exchange
    assert Client().get(url(reply)).status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert post(strict, reply, {"rating": "up"}).status_code == 403
    assert not Feedback.objects.exists()
