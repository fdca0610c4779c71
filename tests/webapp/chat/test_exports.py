"""Exports: each format against its golden file, file names, who may export, the streamed zip, the admin action."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.webapp.chat.export_support import CONVERSATION_ID, SYSTEM_PROMPT, build_conversation
from webapp.chat import exports
from webapp.chat.exports import FORMATS, ZIP_FORMATS, attachment_disposition
from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import ConversationForbidden, access_conversation

pytestmark = pytest.mark.django_db

GOLDEN = Path(__file__).parent / "golden"


def client_for(username: str, **flags: bool) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user(username=username, **flags))
    return client


def read_zip(response) -> zipfile.ZipFile:
    assert response.streaming and response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


# --- one conversation, each format ----------------------------------------------------


@pytest.mark.parametrize("export_format", list(FORMATS))
def test_each_format_matches_its_golden_file(logged_in: Client, alice, export_format: str) -> None:
    build_conversation(alice)
    response = logged_in.get(f"/c/{CONVERSATION_ID}/export/{export_format}/")
    assert response.status_code == 200
    assert response["Content-Type"] == FORMATS[export_format].content_type
    golden = GOLDEN / f"conversation.{FORMATS[export_format].extension}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_bytes(response.content)
    assert response.content == golden.read_bytes(), f"{golden.name} differs (UPDATE_GOLDEN=1 rewrites it)"


def test_json_is_lossless_and_versioned(logged_in: Client, alice) -> None:
    conversation = build_conversation(alice)
    document = json.loads(logged_in.get(f"/c/{CONVERSATION_ID}/export/json/").content)
    assert (document["format"], document["version"]) == ("mistral-chat/conversation", 2)
    assert document["system_prompt"] == SYSTEM_PROMPT and "owner" not in document
    stored = list(Message.objects.filter(conversation=conversation).order_by("created_at"))
    assert [m["id"] for m in document["messages"]] == [str(m.id) for m in stored]
    # A linear conversation is one path: each message under the one before, the last one shown.
    assert [m["parent_id"] for m in document["messages"]] == [None] + [str(m.id) for m in stored[:-1]]
    assert document["current_leaf_id"] == str(stored[-1].id)
    for exported, message in zip(document["messages"], stored, strict=True):
        assert exported["content"] == message.content and exported["status"] == message.status
        assert exported["params"] == message.params and exported["stats"] == message.stats()
        assert exported["error"] == message.error and exported["model_name"] == message.model_name


def test_jsonl_keeps_only_answered_questions_with_the_system_prompt_first(logged_in: Client, alice) -> None:
    build_conversation(alice)
    lines = logged_in.get(f"/c/{CONVERSATION_ID}/export/jsonl/").content.decode().splitlines()
    assert len(lines) == 1
    turns = json.loads(lines[0])["messages"]
    # The failed reply, the blocked one and the unanswered last question take their questions with them.
    assert [(t["role"], t["content"][:12]) for t in turns] == [
        ("system", "You are a po"),
        ("user", "Write a haik"),
        ("assistant", "Waves fold i"),
        ("user", "Try again: <"),
        ("assistant", "La mer murmu"),
    ]


def test_jsonl_of_a_conversation_with_no_complete_reply_is_empty(logged_in: Client, alice) -> None:
    conversation = Conversation.objects.create(owner=alice, system_prompt="be brief")
    Message.objects.create(conversation=conversation, role="user", content="hello")
    Message.objects.create(conversation=conversation, role="assistant", content="", status="failed")
    assert logged_in.get(f"/c/{conversation.id}/export/jsonl/").content == b""


def test_html_is_escaped_and_locked_down(logged_in: Client, alice) -> None:
    build_conversation(alice)
    response = logged_in.get(f"/c/{CONVERSATION_ID}/export/html/")
    body = response.content.decode()
    assert "&lt;b&gt;bold&lt;/b&gt;" in body and "<b>bold" not in body
    assert response["Content-Security-Policy"].startswith("default-src 'none'")
    assert response["Content-Disposition"].startswith("inline;")


def test_download_names_are_safe_ascii_with_the_unicode_title_beside(logged_in: Client, alice) -> None:
    build_conversation(alice)
    disposition = logged_in.get(f"/c/{CONVERSATION_ID}/export/json/")["Content-Disposition"]
    assert disposition == (
        'attachment; filename="Poems-about-the-sea-la-mer.json"; '
        "filename*=UTF-8''Poems%20about%20the%20sea-%20%C2%ABla%20mer%C2%BB%20-%20%E6%B5%B7.json"
    )


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("", 'attachment; filename="conversation.md"'),
        ("../../etc/passwd", 'attachment; filename="etc-passwd.md"'),
        ('a"b\r\nSet-Cookie: x', 'attachment; filename="a-b-Set-Cookie-x.md"'),
        ("é\r\n/x", "attachment; filename=\"e-x.md\"; filename*=UTF-8''%C3%A9-x.md"),
        ("海", "attachment; filename=\"conversation.md\"; filename*=UTF-8''%E6%B5%B7.md"),
        ("x" * 300, f'attachment; filename="{"x" * 60}.md"'),
    ],
)
def test_file_names_never_carry_paths_quotes_or_line_breaks(title: str, expected: str) -> None:
    assert attachment_disposition(title, "md") == expected


# --- who may export -----------------------------------------------------------------------


def export_urls() -> list[str]:
    return [f"/c/{CONVERSATION_ID}/export/{export_format}/" for export_format in FORMATS]


def test_every_export_url_needs_a_login(alice) -> None:
    build_conversation(alice)
    paths = [
        *export_urls(),
        "/c/export/",
        "/c/export/?format=json",
        "/c/export/started/?format=json",
        "/c/import/",
    ]
    for path in paths:
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), path
    assert Client().post("/c/import/")["Location"].startswith("/accounts/login/")


def test_somebody_elses_conversation_is_404_and_absent_from_their_zip(alice) -> None:
    build_conversation(alice)
    bob = client_for("bob")
    for path in export_urls():
        response = bob.get(path)
        assert response.status_code == 404 and b"Poems" not in response.content, path
    archive = read_zip(bob.get("/c/export/?format=json"))
    assert archive.namelist() == ["index.json"]
    assert json.loads(archive.read("index.json"))["conversations"] == []
    assert str(CONVERSATION_ID) not in bob.get("/c/export/").content.decode()


def test_staff_may_export_anybodys_conversation(alice) -> None:
    build_conversation(alice)
    staff = client_for("moderator", is_staff=True)
    for path in export_urls():
        assert staff.get(path).status_code == 200, path


def test_staff_pass_the_access_check_only_where_it_allows_them(alice) -> None:
    build_conversation(alice)
    users = get_user_model().objects
    staff, bob = users.create_user(username="mod", is_staff=True), users.create_user(username="bob")
    with pytest.raises(ConversationForbidden):
        access_conversation(staff, CONVERSATION_ID)  # the chat page and the socket stay owner-only
    assert access_conversation(staff, CONVERSATION_ID, allow_staff=True).owner == alice
    with pytest.raises(ConversationForbidden):
        access_conversation(bob, CONVERSATION_ID, allow_staff=True)
    with pytest.raises(ConversationForbidden):
        access_conversation(AnonymousUser(), CONVERSATION_ID, allow_staff=True)


@pytest.mark.parametrize(
    "path",
    [
        f"/c/{CONVERSATION_ID}/export/pdf/",
        # Nobody's; a fixed id, so that parallel workers collect the same tests.
        "/c/7d0c5b1e-2f4a-4c8e-9b6a-0e1f2a3b4c5d/export/json/",
        "/c/not-a-uuid/export/json/",
        "/c/export/?format=html",
        "/c/export/?format=exe",
        "/c/export/started/?format=exe",
    ],
)
def test_unknown_formats_and_conversations_are_404(logged_in: Client, alice, path: str) -> None:
    build_conversation(alice)
    assert logged_in.get(path).status_code == 404


def test_exports_are_get_only(logged_in: Client, alice) -> None:
    build_conversation(alice)
    assert logged_in.post(f"/c/{CONVERSATION_ID}/export/json/").status_code == 405
    assert logged_in.post("/c/export/?format=json").status_code == 405


# --- all my conversations: the streamed zip ----------------------------------------------------


@pytest.mark.parametrize("export_format", ZIP_FORMATS)
def test_the_zip_has_one_file_per_conversation_and_an_index(
    logged_in: Client, alice, export_format: str
) -> None:
    build_conversation(alice)
    for title in ("second", "second"):  # same title: the names still differ
        other = Conversation.objects.create(owner=alice, title=title)
        Message.objects.create(conversation=other, role="user", content=f"hello from {title}")
    Conversation.objects.create(owner=get_user_model().objects.create_user(username="bob"), title="bob's")

    response = logged_in.get(f"/c/export/?format={export_format}")
    assert response["Content-Disposition"].startswith('attachment; filename="mistral-chat-alice-')
    archive = read_zip(response)
    assert archive.testzip() is None
    index = json.loads(archive.read("index.json"))
    assert (index["format"], index["export_format"]) == ("mistral-chat/index", export_format)
    names = [entry["file"] for entry in index["conversations"]]
    assert sorted(archive.namelist()) == sorted([*names, "index.json"]) and len(set(names)) == 3
    assert all(name.endswith(f".{export_format}") for name in names)
    golden = next(e for e in index["conversations"] if e["id"] == str(CONVERSATION_ID))
    assert golden["messages"] == 9
    single = logged_in.get(f"/c/{CONVERSATION_ID}/export/{export_format}/").content
    assert archive.read(golden["file"]) == single


def test_the_zip_is_built_in_pieces_a_chunk_of_conversations_at_a_time(
    logged_in: Client, alice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "EXPORT_CHUNK", 2)
    monkeypatch.setattr(exports, "ZIP_PIECE_BYTES", 1)
    for number in range(5):
        conversation = Conversation.objects.create(owner=alice, title=f"chat {number}")
        Message.objects.create(conversation=conversation, role="user", content="x" * 100)
    with CaptureQueriesContext(connection) as before:
        response = logged_in.get("/c/export/?format=md")
    assert not [q for q in before.captured_queries if "chat_message" in q["sql"]], "read before streaming"
    with CaptureQueriesContext(connection) as streaming:
        pieces = list(response.streaming_content)
    message_queries = [q for q in streaming.captured_queries if "chat_message" in q["sql"]]
    assert len(message_queries) == 3  # 5 conversations, 2 per chunk: one prefetch per chunk
    assert len(pieces) >= 6  # a piece per conversation, the index and the central directory
    assert len(zipfile.ZipFile(io.BytesIO(b"".join(pieces))).namelist()) == 6


def test_an_error_mid_zip_ends_it_with_a_note_not_a_broken_download(
    logged_in: Client, alice, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(3):
        Conversation.objects.create(owner=alice, title=f"chat {number}")
    render = exports.render_conversation

    def failing_on_the_second(conversation, messages, export_format, **options):
        if conversation.title == "chat 1":
            raise RuntimeError("the database went away")
        return render(conversation, messages, export_format, **options)

    monkeypatch.setattr(exports, "render_conversation", failing_on_the_second)
    archive = read_zip(logged_in.get("/c/export/?format=txt"))
    assert archive.testzip() is None
    assert archive.namelist()[-1] == exports.FAILED_ENTRY and len(archive.namelist()) == 2
    assert b"incomplete" in archive.read(exports.FAILED_ENTRY)


def test_the_export_page_lists_my_conversations_with_a_link_per_format(logged_in: Client, alice) -> None:
    build_conversation(alice)
    body = logged_in.get("/c/export/").content.decode()
    for export_format in FORMATS:
        assert f'href="/c/{CONVERSATION_ID}/export/{export_format}/"' in body
    assert 'action="/c/export/started/"' in body


def test_the_started_page_counts_and_starts_the_download(logged_in: Client, alice) -> None:
    build_conversation(alice)
    response = logged_in.get("/c/export/started/?format=jsonl")
    body = response.content.decode()
    assert '<meta http-equiv="refresh" content="1;url=/c/export/?format=jsonl">' in body
    assert "<strong>1</strong> conversation (9 messages)" in body


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_zip_streams_from_an_async_iterator(alice) -> None:
    """Django's ASGI handler would list() a plain iterator: the whole zip in memory at once."""
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    await sync_to_async(build_conversation)(alice)
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.get("/c/export/?format=json")
    assert response.is_async
    pieces = [piece async for piece in response.streaming_content]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(pieces)))
    assert len(archive.namelist()) == 2


# --- staff: the admin action ----------------------------------------------------------------------


def test_the_admin_action_exports_the_selected_conversations_as_json(alice) -> None:
    build_conversation(alice)
    other = Conversation.objects.create(owner=alice, title="not selected")
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser(username="root", password=None))
    response = staff.post(
        "/admin/chat/conversation/",
        {"action": "export_selected", "_selected_action": [str(CONVERSATION_ID)]},
    )
    archive = read_zip(response)
    index = json.loads(archive.read("index.json"))
    assert [entry["id"] for entry in index["conversations"]] == [str(CONVERSATION_ID)]
    assert str(other.id) not in archive.read("index.json").decode()
    document = json.loads(archive.read(index["conversations"][0]["file"]))
    assert document["format"] == "mistral-chat/conversation" and len(document["messages"]) == 9
