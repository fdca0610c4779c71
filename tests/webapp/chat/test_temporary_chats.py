"""Temporary chats: started from the sidebar, said so on the page, never listed, searched nor exported."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from webapp.chat.exports import FORMATS
from webapp.chat.models import Conversation, Feedback, Message
from webapp.chat.search import search_conversations

pytestmark = pytest.mark.django_db

SECRET = "zanzibar"


@pytest.fixture
def kept(alice) -> Conversation:
    conversation = Conversation.objects.create(owner=alice, title=f"Kept {SECRET}")
    Message.objects.create(conversation=conversation, role="user", content=f"kept {SECRET}")
    return conversation


@pytest.fixture
def secret(alice, logged_in: Client) -> Conversation:
    """A temporary chat, started as the sidebar's button starts one, with a message in it."""
    response = logged_in.post("/c/new/", {"temporary": "1"})
    conversation = Conversation.objects.get(pk=response["Location"].strip("/").rsplit("/", 1)[-1])
    conversation.title = f"Temporary {SECRET}"
    conversation.save()
    Message.objects.create(conversation=conversation, role="user", content=f"temporary {SECRET}")
    Message.objects.create(conversation=conversation, role="assistant", content=f"answer {SECRET}")
    return conversation


def test_the_button_starts_a_chat_that_ends_after_the_configured_hours(logged_in: Client, settings) -> None:
    settings.TEMPORARY_CHAT_HOURS = 6
    before = timezone.now()
    response = logged_in.post("/c/new/", {"temporary": "1"})
    conversation = Conversation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/c/{conversation.id}/"
    assert conversation.is_temporary
    assert before + timedelta(hours=6) <= conversation.expires_at <= timezone.now() + timedelta(hours=6)


@pytest.mark.parametrize("fields", [{}, {"temporary": "0"}, {"temporary": "yes"}, {"temporary": "1 "}])
def test_anything_else_starts_an_ordinary_chat(logged_in: Client, fields: dict[str, str]) -> None:
    logged_in.post("/c/new/", fields)
    assert Conversation.objects.get().expires_at is None


def test_the_page_says_so_and_the_sidebar_leaves_it_out(logged_in: Client, secret, kept) -> None:
    page = logged_in.get(f"/c/{secret.id}/").content.decode()
    assert 'id="temporary-banner"' in page and "Temporary chat." in page
    assert f'datetime="{secret.expires_at.isoformat()}"' in page
    # No download menu, and the sidebar lists only the kept conversation.
    assert "download-menu" not in page
    assert f'data-conversation-id="{kept.id}"' in page and f'data-conversation-id="{secret.id}"' not in page
    ordinary = logged_in.get(f"/c/{kept.id}/").content.decode()
    assert "temporary-banner" not in ordinary and "download-menu" in ordinary


def test_it_is_in_no_list(logged_in: Client, secret, kept) -> None:
    listing = logged_in.get("/c/").content.decode()
    assert str(kept.id) in listing and str(secret.id) not in listing
    export_page = logged_in.get("/c/export/").content.decode()
    assert str(kept.id) in export_page and str(secret.id) not in export_page


def test_search_never_finds_it(alice, logged_in: Client, secret, kept) -> None:
    assert [hit.conversation_id for hit in search_conversations(alice, SECRET)] == [kept.id]
    assert [hit.conversation_id for hit in search_conversations(alice, "answer")] == []
    page = logged_in.get("/c/search/", {"q": SECRET}).content.decode()
    assert str(kept.id) in page and str(secret.id) not in page


@pytest.mark.parametrize("export_format", list(FORMATS))
def test_no_single_export_not_even_for_staff(logged_in: Client, secret, export_format: str) -> None:
    assert logged_in.get(f"/c/{secret.id}/export/{export_format}/").status_code == 404
    staff = Client()
    staff.force_login(get_user_model().objects.create_user(username="staff", is_staff=True))
    assert staff.get(f"/c/{secret.id}/export/{export_format}/").status_code == 404


def test_the_zip_of_all_my_conversations_leaves_it_out(logged_in: Client, secret, kept) -> None:
    response = logged_in.get("/c/export/", {"format": "json"})
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    index = json.loads(archive.read("index.json"))
    assert [entry["id"] for entry in index["conversations"]] == [str(kept.id)]
    assert len(archive.namelist()) == 2
    assert not any(b"temporary" in archive.read(name).lower() for name in archive.namelist())
    started = logged_in.get("/c/export/started/", {"format": "json"})
    assert (started.context["conversation_count"], started.context["message_count"]) == (1, 1)


def test_the_staff_admin_export_leaves_it_out(secret, kept) -> None:
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser(username="root", password=None))
    response = staff.post(
        "/admin/chat/conversation/",
        {"action": "export_selected", "_selected_action": [str(secret.id), str(kept.id)]},
    )
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    index = json.loads(archive.read("index.json"))
    assert [entry["id"] for entry in index["conversations"]] == [str(kept.id)]


@pytest.mark.parametrize("export_format", ["json", "jsonl"])
def test_the_dataset_export_command_leaves_it_out(secret, kept, capsys, export_format: str) -> None:
    Message.objects.create(conversation=kept, role="assistant", content="a complete reply")
    call_command("export_conversations", "--format", export_format)
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1 and "kept" in out.lower()
    assert "temporary" not in out.lower()


def test_its_socket_and_its_owner_still_work_with_it(logged_in: Client, secret) -> None:
    # Only the lists leave it out: its owner opens, renames and deletes it as any other.
    assert logged_in.get(f"/c/{secret.id}/").status_code == 200
    logged_in.post(f"/c/{secret.id}/rename/", {"title": "renamed"})
    secret.refresh_from_db()
    assert secret.title == "renamed" and secret.is_temporary
    logged_in.post(f"/c/{secret.id}/delete/")
    assert not Conversation.objects.filter(pk=secret.pk).exists()


def test_somebody_else_cannot_open_it(secret) -> None:
    intruder = Client()
    intruder.force_login(get_user_model().objects.create_user(username="mallory"))
    assert intruder.get(f"/c/{secret.id}/").status_code == 404


def test_a_send_after_it_was_deleted_under_an_open_page_is_a_clear_error(alice) -> None:
    from inference.params import SamplingParams
    from webapp.chat import services
    from webapp.chat.retention import retention_apply

    conversation = Conversation.objects.create(owner=alice, expires_at=timezone.now() - timedelta(seconds=1))
    retention_apply()  # the page (and its socket's copy of the conversation) is still open
    with pytest.raises(services.ChatInputError) as refused:
        services.reply_send(conversation=conversation, content="still there?", params=SamplingParams())
    assert refused.value.code == "conversation_deleted"
    assert not Message.objects.exists() and not Conversation.objects.exists()


def _rated(conversation: Conversation, owner, text: str) -> None:
    Message.objects.create(conversation=conversation, role="user", content=f"question for {text}")
    reply = Message.objects.create(conversation=conversation, role="assistant", content=text)
    Feedback.objects.create(message=reply, user=owner, rating=Feedback.Rating.UP)


def test_the_rated_dataset_leaves_it_out_from_the_command_and_the_admin(alice, secret, kept, capsys) -> None:
    _rated(kept, alice, "the kept answer")
    _rated(secret, alice, "the temporary answer")
    call_command("export_conversations", "--format", "rated")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "the kept answer" in lines[0]
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser(username="root", password=None))
    response = staff.post(
        "/admin/chat/conversation/",
        {"action": "export_rated_replies", "_selected_action": [str(secret.id), str(kept.id)]},
    )
    downloaded = b"".join(response.streaming_content).decode().splitlines()
    assert len(downloaded) == 1 and "the kept answer" in downloaded[0]
