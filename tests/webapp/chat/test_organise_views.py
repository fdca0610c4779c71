"""The list page's folders, archive and bulk form, the sidebar's groups, and search's filters."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.chat import organise
from webapp.chat.models import Conversation, Folder

pytestmark = pytest.mark.django_db


def flashed(response) -> list[str]:
    return [str(message) for message in response.wsgi_request._messages]


def test_folders_are_made_renamed_and_deleted_from_the_list_page(logged_in: Client, alice) -> None:
    response = logged_in.post("/c/folders/new/", {"name": "Work"})
    folder = Folder.objects.get(owner=alice)
    assert response["Location"] == f"/c/?folder={folder.id}"
    conversation = Conversation.objects.create(owner=alice, title="plan", folder=folder)
    body = logged_in.get(f"/c/?folder={folder.id}").content.decode()
    assert 'id="all-heading">Work' in body and "plan" in body
    logged_in.post(f"/c/folders/{folder.id}/rename/", {"name": "Job"})
    assert Folder.objects.get().name == "Job"
    response = logged_in.post(f"/c/folders/{folder.id}/delete/")
    assert response["Location"] == "/c/" and not Folder.objects.exists()
    assert Conversation.objects.get(pk=conversation.pk).folder is None


def test_a_bad_folder_name_says_why_and_changes_nothing(logged_in: Client, alice) -> None:
    logged_in.post("/c/folders/new/", {"name": "Work"})
    response = logged_in.post("/c/folders/new/", {"name": "work"}, follow=True)
    assert "You already have a folder named “work”." in response.content.decode()
    assert Folder.objects.count() == 1
    response = logged_in.post("/c/folders/new/", {"name": ""}, follow=True)
    assert "The folder name is empty." in response.content.decode()


def test_another_person_s_folder_is_not_found_for_list_search_rename_or_delete(logged_in: Client) -> None:
    bob = get_user_model().objects.create_user(username="bob", password="a-long-Passw0rd!")
    folder = organise.folder_create(owner=bob, name="Bob's")
    assert logged_in.get(f"/c/?folder={folder.id}").status_code == 404
    assert logged_in.get(f"/c/search/?q=x&folder={folder.id}").status_code == 404
    assert logged_in.get("/c/?folder=nonsense").status_code == 404
    assert logged_in.post(f"/c/folders/{folder.id}/rename/", {"name": "pwned"}).status_code == 404
    assert logged_in.post(f"/c/folders/{folder.id}/delete/").status_code == 404
    assert Folder.objects.get(pk=folder.pk).name == "Bob's"


def test_bulk_form_moves_pins_and_archives_and_the_sidebar_follows(logged_in: Client, alice) -> None:
    folder = organise.folder_create(owner=alice, name="Work")
    one, two, three = (Conversation.objects.create(owner=alice, title=f"chat {n}") for n in (1, 2, 3))
    response = logged_in.post(
        "/c/bulk/",
        {"action": "move", "folder": folder.id, "conversation": [one.id, two.id], "next": "/c/?page=1"},
    )
    assert response["Location"] == "/c/?page=1"
    assert flashed(response) == ["Moved 2 conversations."]
    logged_in.post("/c/bulk/", {"action": "pin", "conversation": [three.id]})
    logged_in.post("/c/bulk/", {"action": "archive", "conversation": [two.id]})
    body = logged_in.get("/c/").content.decode()
    sidebar = body[body.index('id="conversation-list"') : body.index('id="archive-link"')]
    # Pinned on top, then the folder with what is left in it; the archived one is gone.
    assert sidebar.index("chat 3") < sidebar.index("Work") < sidebar.index("chat 1")
    assert "chat 2" not in sidebar
    archive = logged_in.get("/c/?archived=1").content.decode()
    assert "chat 2" in archive and 'value="unarchive"' in archive
    logged_in.post("/c/bulk/", {"action": "unarchive", "conversation": [two.id]})
    assert Conversation.objects.get(pk=two.pk).archived_at is None


def test_bulk_delete_asks_first(logged_in: Client, alice) -> None:
    one, two = (Conversation.objects.create(owner=alice, title=f"chat {n}") for n in (1, 2))
    page = logged_in.post("/c/bulk/", {"action": "delete", "conversation": [one.id, two.id]})
    assert page.status_code == 200 and "Delete 2 conversations?" in page.content.decode()
    assert Conversation.objects.count() == 2
    logged_in.post("/c/bulk/", {"action": "delete", "confirm": "1", "conversation": [one.id, two.id]})
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"action": "archive"},
        {"action": "archive", "conversation": ["not-a-uuid"]},
        {"action": "archive", "conversation": [str(uuid.uuid4())]},
        {"action": "move", "folder": "999999", "conversation": ["MINE"]},
        {"action": "move", "folder": "nonsense", "conversation": ["MINE"]},
        {"action": "explode", "conversation": ["MINE"]},
        {"action": "archive", "conversation": ["MINE", "THEIRS"]},
        {"action": "delete", "conversation": ["MINE", "THEIRS"]},
        {"action": "delete", "confirm": "1", "conversation": ["MINE", "THEIRS"]},
    ],
)
def test_malformed_or_hostile_bulk_posts_say_why_and_change_nothing(
    logged_in: Client, alice, payload
) -> None:
    bob = get_user_model().objects.create_user(username="bob", password="a-long-Passw0rd!")
    mine = Conversation.objects.create(owner=alice, title="mine")
    theirs = Conversation.objects.create(owner=bob, title="theirs")
    swap = {"MINE": str(mine.id), "THEIRS": str(theirs.id)}
    payload = {**payload, "conversation": [swap.get(v, v) for v in payload.get("conversation", [])]}
    response = logged_in.post("/c/bulk/", payload, follow=True)
    assert response.redirect_chain[0][0] == "/c/"
    assert flashed(response)[0] in response.content.decode()
    for conversation in (mine, theirs):
        fresh = Conversation.objects.get(pk=conversation.pk)
        assert (fresh.folder_id, fresh.pinned, fresh.archived_at) == (None, False, None)


def test_too_many_ids_in_one_bulk_post_are_refused(logged_in: Client, alice, settings) -> None:
    settings.MAX_BULK_CONVERSATIONS = 2
    chats = [Conversation.objects.create(owner=alice, title=f"chat {n}") for n in range(3)]
    response = logged_in.post("/c/bulk/", {"action": "archive", "conversation": [c.id for c in chats]})
    assert flashed(response) == ["At most 2 conversations at once."]
    assert not Conversation.objects.filter(archived_at__isnull=False).exists()


def test_bulk_never_redirects_off_the_site(logged_in: Client, alice) -> None:
    chat = Conversation.objects.create(owner=alice, title="chat")
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        response = logged_in.post("/c/bulk/", {"action": "pin", "conversation": [chat.id], "next": target})
        assert response["Location"] == "/c/"


def test_search_page_filters(logged_in: Client, alice) -> None:
    folder = organise.folder_create(owner=alice, name="Work")
    Conversation.objects.create(owner=alice, title="budget filed", folder=folder)
    gone = Conversation.objects.create(owner=alice, title="budget archived")
    organise.conversation_archive(conversation=gone, archived=True)

    def hits(query: str) -> str:
        body = logged_in.get(f"/c/search/?q=budget{query}").content.decode()
        return body[body.index('id="search-hits"') :]

    assert "budget archived" not in hits("") and "budget filed" in hits("")
    assert "budget filed" not in hits("&archived=only") and "budget archived" in hits("&archived=only")
    assert "budget archived" in hits("&archived=include") and "budget filed" in hits("&archived=include")
    in_folder = hits(f"&folder={folder.id}&archived=include")
    assert "budget filed" in in_folder and "budget archived" not in in_folder
    assert 'value="only" selected' in logged_in.get("/c/search/?q=budget&archived=only").content.decode()


def test_staff_see_and_filter_organised_conversations_in_the_admin(alice) -> None:
    staff = get_user_model().objects.create_superuser(username="sam", password="a-long-Passw0rd!")
    client = Client()
    client.force_login(staff)
    conversation = Conversation.objects.create(owner=alice, title="archived one")
    organise.conversation_archive(conversation=conversation, archived=True)
    Conversation.objects.create(owner=alice, title="kept one")
    listed = client.get("/admin/chat/conversation/?archived_at__isnull=False").content.decode()
    assert "archived one" in listed and "kept one" not in listed
    # The folder is an id field, not a select of every person's folders.
    change = client.get(f"/admin/chat/conversation/{conversation.id}/change/").content.decode()
    assert 'name="folder"' in change and '<select name="folder"' not in change
