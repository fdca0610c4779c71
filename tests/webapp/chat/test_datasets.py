"""Dataset exports, read back line by line: preference pairs (`--format dpo`) and rated replies (`rated`)."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from inference.params import SamplingParams
from webapp.chat import branches, services
from webapp.chat.models import Conversation, Feedback, Message
from webapp.moderation.models import ModerationEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.celery_app, "send_task", lambda *args, **kwargs: None)


def done(reply: Message, content: str) -> Message:
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content=content)
    return Message.objects.get(pk=reply.pk)


@pytest.fixture
def rated():
    """q1 with three versions of its reply: a1 (unrated, gone on from: q2 → a2 👍), a1b 👍, a1c 👎."""
    owner = get_user_model().objects.create_user(username="owner", password="x" * 12)
    conversation = Conversation.objects.create(owner=owner, system_prompt="Be brief.")
    a1 = done(services.reply_send(conversation=conversation, content="q1", params=SamplingParams()), "a1")
    a1b = done(branches.reply_regenerate(conversation=conversation), "a1b")
    a1c = done(branches.reply_regenerate(conversation=conversation), "a1c")
    branches.conversation_switch(conversation=conversation, message_id=str(a1.id))
    a2 = done(services.reply_send(conversation=conversation, content="q2", params=SamplingParams()), "a2")
    for reply, rating in ((a1b, "up"), (a1c, "down"), (a2, "up")):
        Feedback.objects.create(
            message=reply, user=owner, rating=rating, reasons=["helpful"] * (rating == "up")
        )
    # Only the owner's ratings count: another account's opinion of a1 is not theirs.
    stranger = get_user_model().objects.create_user(username="stranger", password="x" * 12)
    Feedback.objects.create(message=a1c, user=stranger, rating="up")
    ModerationEvent.objects.create(message=a1c, user=owner, hook="rules", stage="output", action="flag")
    return conversation


def export(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("export_conversations", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q1"}]


def test_dpo_pairs_prefer_the_better_rating_then_the_version_gone_on_from(rated) -> None:
    lines = export("--format", "dpo")
    assert all(set(line) == {"prompt", "chosen", "rejected"} for line in lines)
    assert all(line["prompt"] == PROMPT for line in lines)
    pairs = sorted((line["chosen"][0]["content"], line["rejected"][0]["content"]) for line in lines)
    assert pairs == [("a1", "a1c"), ("a1b", "a1"), ("a1b", "a1c")]
    assert all(
        side[0]["role"] == "assistant" for line in lines for side in (line["chosen"], line["rejected"])
    )


def test_dpo_lines_carry_the_moderation_of_each_side(rated) -> None:
    lines = export("--format", "dpo", "--with-moderation")
    for line in lines:
        flagged = line["rejected"][0]["content"] == "a1c"
        assert [event["action"] for event in line["moderation"]["rejected"]] == (["flag"] if flagged else [])
        assert line["moderation"]["chosen"] == []


def test_rated_replies_are_labelled_examples_with_their_prompt(rated) -> None:
    lines = export("--format", "rated")
    assert [(line["completion"][0]["content"], line["label"]) for line in lines] == [
        ("a1b", True),
        ("a1c", False),
        ("a2", True),
    ]
    assert lines[0]["prompt"] == PROMPT and lines[0]["reasons"] == ["helpful"] and lines[1]["reasons"] == []
    assert lines[2]["prompt"] == [
        *PROMPT,
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]


def test_a_conversation_without_versions_or_ratings_gives_no_line(rated) -> None:
    owner = get_user_model().objects.create_user(username="plain", password="x" * 12)
    plain = Conversation.objects.create(owner=owner)
    done(services.reply_send(conversation=plain, content="q", params=SamplingParams()), "a")
    assert len(export("--format", "dpo", "--user", "plain")) == 0
    assert len(export("--format", "rated", "--user", "plain")) == 0


def test_the_admin_actions_stream_the_same_lines_for_the_selected_conversations(rated) -> None:
    from django.test import Client

    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser(username="root", password=None))
    for action, dataset in [("export_preference_pairs", "dpo"), ("export_rated_replies", "rated")]:
        response = staff.post(
            "/admin/chat/conversation/", {"action": action, "_selected_action": [str(rated.pk)]}
        )
        assert response.status_code == 200 and response["Content-Type"].startswith("application/jsonl")
        streamed = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
        assert streamed == export("--format", dataset, "--with-moderation")
