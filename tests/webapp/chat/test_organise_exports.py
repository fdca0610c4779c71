"""Folder, pin and archive in the JSON export (optional fields of version 2) and back through an import."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.webapp.chat.export_support import CONVERSATION_ID, build_conversation
from tests.webapp.chat.test_imports import without_ids
from webapp.chat import organise
from webapp.chat.models import Conversation, Folder

pytestmark = pytest.mark.django_db


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, document: dict):
    content = json.dumps(document).encode()
    return client.post("/c/import/", {"file": SimpleUploadedFile("export.json", content)})


def test_an_unorganised_conversation_exports_without_the_fields(alice) -> None:
    build_conversation(alice)
    document = json.loads(client_of(alice).get(f"/c/{CONVERSATION_ID}/export/json/").content)
    assert not {"folder", "pinned", "archived"} & document.keys()


def test_folder_pin_and_archive_export_and_import_back(alice) -> None:
    bob = get_user_model().objects.create_user(username="bob")
    conversation = build_conversation(alice)
    organise.conversation_move(
        conversation=conversation, folder=organise.folder_create(owner=alice, name="Sea")
    )
    organise.conversation_pin(conversation=conversation, pinned=True)
    organise.conversation_archive(conversation=conversation, archived=True)
    exported = json.loads(client_of(alice).get(f"/c/{CONVERSATION_ID}/export/json/").content)
    assert (exported["folder"], exported["pinned"], exported["archived"]) == ("Sea", True, True)
    organise.folder_create(owner=bob, name="sea")  # an import files it in bob's own folder of that name
    assert upload(client_of(bob), exported).status_code == 200
    imported = Conversation.objects.get(owner=bob)
    assert (imported.folder.name, imported.pinned, imported.archived_at is not None) == ("sea", True, True)
    assert Folder.objects.filter(owner=bob).count() == 1
    again = json.loads(client_of(bob).get(f"/c/{imported.id}/export/json/").content)
    assert without_ids(again) | {"folder": "Sea"} == without_ids(exported)


def test_the_export_all_zip_keeps_archived_conversations(alice) -> None:
    conversation = build_conversation(alice)
    organise.conversation_archive(conversation=conversation, archived=True)
    response = client_of(alice).get("/c/export/?format=json")
    assert response.status_code == 200 and str(CONVERSATION_ID)[:8].encode() in b"".join(
        response.streaming_content
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"pinned": "yes"}, "pinned must be true or false"),
        ({"archived": 1}, "archived must be true or false"),
        ({"folder": ""}, "folder must be a folder name"),
        ({"folder": "x" * 101}, "folder must be a folder name"),
        ({"folder": ["Sea"]}, "folder must be a folder name"),
    ],
)
def test_bad_organised_fields_are_refused_whole(alice, fields: dict, reason: str) -> None:
    document = {"format": "mistral-chat/conversation", "version": 2, "messages": [], **fields}
    response = upload(client_of(alice), document)
    assert response.status_code == 400 and reason in response.content.decode()
    assert not Conversation.objects.exists() and not Folder.objects.exists()


def test_an_import_over_the_folder_limit_is_refused(alice, settings) -> None:
    settings.MAX_FOLDERS = 1
    organise.folder_create(owner=alice, name="Home")
    document = {"format": "mistral-chat/conversation", "version": 2, "messages": [], "folder": "Sea"}
    response = upload(client_of(alice), document)
    assert response.status_code == 400 and "at most 1 folders" in response.content.decode()
    assert not Conversation.objects.exists()
