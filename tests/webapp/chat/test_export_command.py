"""`manage.py export_conversations`: JSON Lines for datasets, with its filters."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tests.webapp.chat.export_support import CONVERSATION_ID, build_conversation, message_id
from webapp.chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    """alice's golden conversation (it has a blocked reply) and two clean ones of bob's, on other days."""
    users = get_user_model().objects
    alice, bob = users.create_user(username="alice"), users.create_user(username="bob")
    build_conversation(alice)
    for day, text in ((3, "early"), (20, "late")):
        conversation = Conversation.objects.create(owner=bob, title=text)
        Message.objects.create(conversation=conversation, role="user", content=f"{text} question")
        Message.objects.create(conversation=conversation, role="assistant", content=f"{text} answer")
        Conversation.objects.filter(pk=conversation.pk).update(created_at=datetime(2024, 5, day, tzinfo=UTC))
    return alice, bob


def export(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("export_conversations", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def firsts(lines: list[dict]) -> list[str]:
    return [next(t["content"] for t in line["messages"] if t["role"] == "user") for line in lines]


def test_jsonl_to_a_file_one_fine_tuning_line_per_conversation(people, tmp_path: Path) -> None:
    target = tmp_path / "dataset.jsonl"
    err = io.StringIO()
    call_command("export_conversations", "--format", "jsonl", "--output", str(target), stderr=err)
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert sorted(firsts(lines)) == ["Write a haiku about the sea", "early question", "late question"]
    assert all(set(line) == {"messages"} for line in lines)
    assert all({t["role"] for t in line["messages"]} <= {"system", "user", "assistant"} for line in lines)
    assert "Exported 3 conversations" in err.getvalue()


def test_filters_by_user_and_by_day(people) -> None:
    assert firsts(export("--user", "alice")) == ["Write a haiku about the sea"]
    assert firsts(export("--user", "bob", "--since", "2024-05-04")) == ["late question"]
    assert firsts(export("--user", "bob", "--until", "2024-05-03")) == ["early question"]
    assert export("--since", "2024-05-04", "--until", "2024-05-19") == []


def test_exclude_blocked_leaves_out_conversations_with_a_blocked_message(people) -> None:
    assert sorted(firsts(export("--exclude-blocked"))) == ["early question", "late question"]


def test_json_format_is_one_lossless_document_per_line(people) -> None:
    documents = export("--format", "json", "--user", "alice")
    assert [d["id"] for d in documents] == [str(CONVERSATION_ID)]
    assert documents[0]["format"] == "mistral-chat/conversation" and len(documents[0]["messages"]) == 9


def test_with_moderation_adds_each_messages_events(people, tmp_path: Path) -> None:
    alice, _ = people
    from webapp.moderation.models import ModerationEvent

    flagged = Message.objects.get(id=message_id(1))  # the first, complete reply
    ModerationEvent.objects.create(
        message=flagged,
        user=alice,
        hook="rules",
        stage="stream",
        action="flag",
        categories=["violence_and_threats"],
        reason="phrase",
        excerpt=flagged.content,
    )
    target = tmp_path / "with-moderation.json"
    call_command(
        "export_conversations",
        "--format",
        "json",
        "--with-moderation",
        "--user",
        "alice",
        "--output",
        str(target),
        stderr=io.StringIO(),
    )
    (document,) = [json.loads(line) for line in target.read_text().splitlines()]
    by_id = {m["id"]: m["moderation"] for m in document["messages"]}
    (event,) = by_id[str(message_id(1))]
    assert (event["action"], event["stage"], event["categories"]) == (
        "flag",
        "stream",
        ["violence_and_threats"],
    )
    assert all(not events for mid, events in by_id.items() if mid != str(message_id(1)))

    lines = tmp_path / "with-moderation.jsonl"
    call_command(
        "export_conversations",
        "--format",
        "jsonl",
        "--with-moderation",
        "--user",
        "alice",
        "--output",
        str(lines),
        stderr=io.StringIO(),
    )
    (line,) = [json.loads(text) for text in lines.read_text().splitlines()]
    assert len(line["moderation"]) == len(line["messages"])
    assert [len(events) for events in line["moderation"]].count(1) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--user", "nobody"], "No user named 'nobody'"), (["--since", "May 4"], "YYYY-MM-DD")],
)
def test_bad_arguments_are_errors(people, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("export_conversations", *args, stdout=io.StringIO())
