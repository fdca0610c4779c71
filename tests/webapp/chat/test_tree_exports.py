"""Exports of a tree: JSON v2 keeps it whole and round-trips, v1 still imports, md/txt/jsonl show the
path shown or every path, and a hostile tree (orphan, cycle, bad leaf) imports nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from inference.params import SamplingParams
from tests.webapp.chat.export_support import build_conversation
from tests.webapp.chat.test_imports import dumps, logged_in, upload, without_ids
from webapp.chat import branches, services
from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import messages_of
from webapp.moderation.models import HiddenReply

pytestmark = pytest.mark.django_db
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def no_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.celery_app, "send_task", lambda *args, **kwargs: None)


@pytest.fixture
def alice():
    return get_user_model().objects.create_user(username="alice", password="x" * 12)


@pytest.fixture
def bob():
    return get_user_model().objects.create_user(username="bob", password="x" * 12)


def done(reply: Message, content: str) -> Message:
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content=content)
    return Message.objects.get(pk=reply.pk)


def branched(owner) -> Conversation:
    """q1 → {a1 → q2 → a2, a1b}, then q1 edited → b1; the path shown switched back to a1b.

    Three paths: q1 a1 q2 a2 / q1 a1b / q1' b1.
    """
    conversation = Conversation.objects.create(owner=owner, title="branches")
    a1 = done(services.reply_send(conversation=conversation, content="q1", params=SamplingParams()), "a1")
    done(services.reply_send(conversation=conversation, content="q2", params=SamplingParams()), "a2")
    a1b = done(branches.reply_regenerate(conversation=conversation, message_id=str(a1.id)), "a1b")
    edit = branches.reply_edit(conversation=conversation, message_id=str(a1.parent_id), content="q1 edited")
    done(edit, "b1")
    branches.conversation_switch(conversation=conversation, message_id=str(a1b.id))
    conversation.refresh_from_db()
    return conversation


def get(client: Client, conversation: Conversation, export_format: str, query: str = "") -> str:
    response = client.get(f"/c/{conversation.id}/export/{export_format}/{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_json_v2_keeps_the_whole_tree_and_the_path_shown(alice) -> None:
    conversation = branched(alice)
    document = json.loads(get(logged_in(alice), conversation, "json"))
    assert document["version"] == 2
    by_id = {m["id"]: m for m in document["messages"]}
    assert len(by_id) == 7 == conversation.messages.count()
    assert by_id[document["current_leaf_id"]]["content"] == "a1b"
    for message in Message.objects.filter(conversation=conversation):
        assert by_id[str(message.id)]["parent_id"] == (message.parent_id and str(message.parent_id))


def test_a_tree_round_trips_export_import_export_equal_but_for_ids(alice, bob) -> None:
    exported = get(logged_in(alice), branched(alice), "json")
    assert upload(logged_in(bob), exported.encode()).status_code == 200
    imported = Conversation.objects.get(owner=bob)
    again = json.loads(get(logged_in(bob), imported, "json"))
    assert without_ids(again) == without_ids(json.loads(exported))
    assert [m.content for m in messages_of(imported)] == ["q1", "a1b"]
    assert messages_of(imported)[1].position.count == 2


def test_a_version_1_file_imports_as_one_path(bob) -> None:
    assert upload(logged_in(bob), (GOLDEN / "conversation.v1.json").read_bytes()).status_code == 200
    imported = Conversation.objects.get(owner=bob)
    assert len(messages_of(imported)) == 9
    # Exported again it is the version 2 document of the same conversation.
    again = json.loads(get(logged_in(bob), imported, "json"))
    assert without_ids(again) == without_ids(json.loads((GOLDEN / "conversation.json").read_text()))


def test_md_txt_and_jsonl_show_the_path_shown_or_every_path(alice) -> None:
    conversation = branched(alice)
    client = logged_in(alice)
    md = get(client, conversation, "md")
    assert "a1b" in md and "q2" not in md and "Path 1 of" not in md
    md_all = get(client, conversation, "md", "?paths=all")
    assert "## Path 3 of 3" in md_all and "q2" in md_all and "q1 edited" in md_all
    txt_all = get(client, conversation, "txt", "?paths=all")
    assert "=== Path 2 of 3 ===" in txt_all and "7 messages" in txt_all
    lines = [json.loads(line) for line in get(client, conversation, "jsonl").splitlines()]
    assert [[t["content"] for t in line["messages"]] for line in lines] == [["q1", "a1b"]]
    every = [json.loads(line) for line in get(client, conversation, "jsonl", "?paths=all").splitlines()]
    assert [[t["content"] for t in line["messages"]] for line in every] == [
        ["q1", "a1", "q2", "a2"],
        ["q1", "a1b"],
        ["q1 edited", "b1"],
    ]


def test_the_command_writes_a_line_per_path_with_all_paths(alice) -> None:
    branched(alice)
    build_conversation(alice)  # linear: one line either way

    def export(*args: str) -> list[dict]:
        out = io.StringIO()
        call_command("export_conversations", "--format", "jsonl", *args, stdout=out)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    assert len(export()) == 2
    every = export("--all-paths", "--with-moderation")
    assert len(every) == 4
    assert all(len(line["moderation"]) == len(line["messages"]) for line in every)


def test_a_hidden_reply_leaves_the_json_and_its_children_name_the_message_before_it(alice, bob) -> None:
    conversation = branched(alice)
    a1 = conversation.messages.get(content="a1")
    HiddenReply.objects.create(message=a1, hidden_by=bob)
    document = json.loads(get(logged_in(alice), conversation, "json"))
    by_content = {m["content"]: m for m in document["messages"]}
    assert "a1" not in by_content
    assert by_content["q2"]["parent_id"] == by_content["q1"]["id"]
    assert upload(logged_in(bob), json.dumps(document).encode()).status_code == 200


def tree_file(messages: list[dict], **fields) -> bytes:
    return dumps({"format": "mistral-chat/conversation", "version": 2, "messages": messages, **fields})


HOSTILE_TREES = {
    "an orphan": (
        tree_file([{"id": "a", "role": "user", "content": "x", "parent_id": "nowhere"}]),
        "messages[0].parent_id names no message of the file (an orphan)",
    ),
    "a cycle": (
        tree_file(
            [
                {"id": "a", "role": "user", "content": "x", "parent_id": "b"},
                {"id": "b", "role": "assistant", "content": "y", "parent_id": "a"},
            ]
        ),
        "messages[0] is its own ancestor through parent_id (a cycle)",
    ),
    "its own parent": (
        tree_file([{"id": "a", "role": "user", "content": "x", "parent_id": "a"}]),
        "(a cycle)",
    ),
    "a repeated id": (
        tree_file([{"id": "a", "role": "user", "content": "x"}, {"id": "a", "role": "user", "content": "y"}]),
        "messages[1].id is also the id of messages[0]",
    ),
    "a leaf that is no message": (
        tree_file([{"id": "a", "role": "user", "content": "x"}], current_leaf_id="zzz"),
        '"current_leaf_id" names no message of the file',
    ),
    "a parent that is not text": (
        tree_file([{"id": "a", "role": "user", "content": "x", "parent_id": 7}]),
        "parent_id must be a string",
    ),
    "tree fields in a version 1 file": (
        dumps(
            {
                "format": "mistral-chat/conversation",
                "version": 1,
                "messages": [{"id": "a", "role": "user", "content": "x", "parent_id": None}],
            }
        ),
        "fields this version does not know: parent_id",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_TREES))
def test_a_hostile_tree_imports_nothing_and_says_why(bob, case: str) -> None:
    content, reason = HOSTILE_TREES[case]
    response = upload(logged_in(bob), content)
    assert response.status_code == 400
    assert reason in response.content.decode().replace("&quot;", '"')
    assert not Conversation.objects.filter(owner=bob).exists()
    assert not Message.objects.exists()
