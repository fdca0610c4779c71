"""Folders, pins, the archive and bulk actions: the services and selectors."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model

from webapp.chat import organise
from webapp.chat.models import Conversation, Folder, Message
from webapp.chat.search import SearchFilters, search_conversations
from webapp.chat.selectors import (
    FolderNotFound,
    conversations_for_user,
    folder_for_user,
    listed_conversations,
    sidebar_groups,
)
from webapp.chat.services import ChatInputError

pytestmark = pytest.mark.django_db


@pytest.fixture
def mallory():
    return get_user_model().objects.create_user(username="mallory", password="a-long-Passw0rd!")


def state(owner) -> list[tuple[str, int | None, bool, bool]]:
    """Everything organising can change, to show that a refusal changed nothing."""
    return [
        (c.title, c.folder_id, c.pinned, c.archived_at is not None)
        for c in Conversation.objects.filter(owner=owner).order_by("title")
    ] + [(f.name, f.pk, False, False) for f in Folder.objects.filter(owner=owner).order_by("pk")]


# --- folders ------------------------------------------------------------------


def test_a_folder_is_created_renamed_and_deleted_keeping_its_conversations(alice) -> None:
    folder = organise.folder_create(owner=alice, name="  Work   stuff ")
    assert folder.name == "Work stuff"
    conversation = Conversation.objects.create(owner=alice, title="plan", folder=folder)
    organise.folder_rename(folder=folder, name="Work")
    assert Folder.objects.get(pk=folder.pk).name == "Work"
    organise.folder_delete(folder=folder)
    conversation.refresh_from_db()
    assert not Folder.objects.exists() and conversation.folder_id is None


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("", "empty_folder_name"),
        ("   ", "empty_folder_name"),
        ("x" * 101, "folder_name_too_long"),
        (None, "invalid_folder_name"),
        (["Work"], "invalid_folder_name"),
        ("work", "duplicate_folder_name"),
        ("WORK ", "duplicate_folder_name"),
    ],
)
def test_bad_folder_names_are_refused_and_nothing_changes(alice, name: object, code: str) -> None:
    organise.folder_create(owner=alice, name="Work")
    before = state(alice)
    with pytest.raises(ChatInputError) as refused:
        organise.folder_create(owner=alice, name=name)
    assert refused.value.code == code
    assert state(alice) == before


def test_renaming_to_another_folder_s_name_is_refused_but_a_case_change_is_not(alice) -> None:
    work = organise.folder_create(owner=alice, name="Work")
    organise.folder_create(owner=alice, name="Home")
    with pytest.raises(ChatInputError, match="already have"):
        organise.folder_rename(folder=work, name="home")
    assert organise.folder_rename(folder=work, name="WORK").name == "WORK"


def test_two_people_may_name_folders_alike(alice, mallory) -> None:
    organise.folder_create(owner=alice, name="Work")
    assert organise.folder_create(owner=mallory, name="Work").owner == mallory


def test_folders_are_limited_in_number(alice, settings) -> None:
    settings.MAX_FOLDERS = 2
    organise.folder_create(owner=alice, name="a")
    organise.folder_create(owner=alice, name="b")
    with pytest.raises(ChatInputError) as refused:
        organise.folder_create(owner=alice, name="c")
    assert refused.value.code == "too_many_folders" and Folder.objects.count() == 2


@pytest.mark.parametrize("folder_id", ["999999", "abc", "", "1e3", "99999999999999999999999", "-1"])
def test_folder_for_user_finds_nothing_for_unknown_or_malformed_ids(alice, folder_id: str) -> None:
    with pytest.raises(FolderNotFound):
        folder_for_user(alice, folder_id)


def test_folder_for_user_finds_nothing_of_another_person(alice, mallory) -> None:
    folder = organise.folder_create(owner=alice, name="Work")
    assert folder_for_user(alice, str(folder.pk)) == folder
    with pytest.raises(FolderNotFound):
        folder_for_user(mallory, folder.pk)


# --- one conversation and the lists ---------------------------------------------------------


def test_moving_pinning_and_archiving_do_not_reorder_by_time(alice) -> None:
    folder = organise.folder_create(owner=alice, name="Work")
    conversation = Conversation.objects.create(owner=alice, title="plan")
    updated_at = conversation.updated_at
    organise.conversation_move(conversation=conversation, folder=folder)
    organise.conversation_pin(conversation=conversation, pinned=True)
    organise.conversation_archive(conversation=conversation, archived=True)
    conversation.refresh_from_db()
    assert (conversation.folder, conversation.pinned) == (folder, True)
    assert conversation.archived_at is not None and conversation.updated_at == updated_at
    organise.conversation_archive(conversation=conversation, archived=False)
    assert Conversation.objects.get(pk=conversation.pk).archived_at is None


def test_a_conversation_cannot_move_to_another_person_s_folder(alice, mallory) -> None:
    folder = organise.folder_create(owner=mallory, name="Mallory's")
    conversation = Conversation.objects.create(owner=alice, title="plan")
    with pytest.raises(ChatInputError):
        organise.conversation_move(conversation=conversation, folder=folder)
    assert Conversation.objects.get(pk=conversation.pk).folder_id is None


def test_lists_put_pins_first_and_keep_the_archive_apart(alice) -> None:
    old = Conversation.objects.create(owner=alice, title="old")
    new = Conversation.objects.create(owner=alice, title="new")
    gone = Conversation.objects.create(owner=alice, title="gone")
    organise.conversation_pin(conversation=old, pinned=True)
    organise.conversation_archive(conversation=gone, archived=True)
    assert list(listed_conversations(alice)) == [old, new]
    assert list(listed_conversations(alice, archived=True)) == [gone]
    # The archive hides, it does not delete: exports still see it.
    assert gone in conversations_for_user(alice)


def test_the_sidebar_groups_pins_then_folders_then_the_rest(alice) -> None:
    work = organise.folder_create(owner=alice, name="Work")
    home = organise.folder_create(owner=alice, name="Home")
    filed = Conversation.objects.create(owner=alice, title="filed", folder=work)
    pinned = Conversation.objects.create(owner=alice, title="pinned", folder=work, pinned=True)
    loose = Conversation.objects.create(owner=alice, title="loose")
    groups = sidebar_groups(list(listed_conversations(alice)), [home, work])
    assert groups.pinned == [pinned]
    assert groups.folders == [(home, []), (work, [filed])]
    assert groups.unfiled == [loose]


# --- bulk ------------------------------------------------------------------------------------


@pytest.fixture
def three(alice) -> list[Conversation]:
    conversations = [Conversation.objects.create(owner=alice, title=f"chat {n}") for n in range(3)]
    Message.objects.create(conversation=conversations[0], role="user", content="hello")
    return conversations


def ids(conversations: list[Conversation]) -> list[str]:
    return [str(c.id) for c in conversations]


def test_bulk_move_archive_pin_and_delete(alice, three) -> None:
    folder = organise.folder_create(owner=alice, name="Work")
    assert (
        organise.conversations_bulk(
            owner=alice, action="move", conversation_ids=ids(three[:2]), folder=folder
        )
        == 2
    )
    assert list(folder.conversations.order_by("title")) == three[:2]
    organise.conversations_bulk(owner=alice, action="archive", conversation_ids=ids(three[1:]))
    assert list(listed_conversations(alice, archived=True).order_by("title")) == three[1:]
    organise.conversations_bulk(owner=alice, action="unarchive", conversation_ids=ids(three[2:]))
    organise.conversations_bulk(owner=alice, action="pin", conversation_ids=ids(three[:1]))
    assert list(listed_conversations(alice)) == [three[0], three[2]]
    organise.conversations_bulk(owner=alice, action="move", conversation_ids=ids(three[:1]), folder=None)
    assert Conversation.objects.get(pk=three[0].pk).folder_id is None
    organise.conversations_bulk(owner=alice, action="delete", conversation_ids=ids(three[:2]))
    assert list(Conversation.objects.all()) == [three[2]] and not Message.objects.exists()


@pytest.mark.parametrize(
    ("make_ids", "code"),
    [
        (lambda mine, theirs: [], "no_conversations"),
        (lambda mine, theirs: [*mine, *theirs], "unknown_conversation"),
        (lambda mine, theirs: [*mine, str(uuid.uuid4())], "unknown_conversation"),
        (lambda mine, theirs: [*mine, "not-a-uuid"], "unknown_conversation"),
        (lambda mine, theirs: [*mine, ""], "unknown_conversation"),
        (lambda mine, theirs: mine * 100, "too_many_conversations"),
    ],
)
@pytest.mark.parametrize("action", organise.BULK_ACTIONS)
def test_hostile_bulk_requests_are_refused_whole(alice, mallory, three, make_ids, code, action) -> None:
    theirs = Conversation.objects.create(owner=mallory, title="mallory's")
    folder = organise.folder_create(owner=alice, name="Work") if action == "move" else None
    before, their_before = state(alice), state(mallory)
    with pytest.raises(ChatInputError) as refused:
        organise.conversations_bulk(
            owner=alice, action=action, conversation_ids=make_ids(ids(three), [str(theirs.id)]), folder=folder
        )
    assert refused.value.code == code
    assert state(alice) == before and state(mallory) == their_before
    assert Message.objects.count() == 1


def test_bulk_refuses_an_unknown_action_and_another_person_s_folder(alice, mallory, three) -> None:
    theirs = organise.folder_create(owner=mallory, name="Mallory's")
    before = state(alice)
    with pytest.raises(ChatInputError, match="Unknown action"):
        organise.conversations_bulk(owner=alice, action="explode", conversation_ids=ids(three))
    with pytest.raises(ChatInputError, match="No such folder"):
        organise.conversations_bulk(owner=alice, action="move", conversation_ids=ids(three), folder=theirs)
    assert state(alice) == before and not theirs.conversations.exists()


def test_bulk_is_one_transaction(alice, three, monkeypatch) -> None:
    """A failure half-way through a bulk delete leaves every conversation in place."""
    from webapp.chat import services

    calls = []

    def failing_delete(*, conversation: Conversation) -> None:
        calls.append(conversation)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        conversation.delete()

    monkeypatch.setattr(services, "conversation_delete", failing_delete)
    with pytest.raises(RuntimeError):
        organise.conversations_bulk(owner=alice, action="delete", conversation_ids=ids(three))
    assert Conversation.objects.count() == 3


def test_temporary_chats_cannot_be_organised_in_bulk(alice) -> None:
    from webapp.chat.services import conversation_create

    temporary = conversation_create(owner=alice, temporary=True)
    with pytest.raises(ChatInputError):
        organise.conversations_bulk(owner=alice, action="pin", conversation_ids=[str(temporary.id)])


# --- search filters --------------------------------------------------------------------


def test_search_filters_by_folder_pin_and_archive(alice) -> None:
    work = organise.folder_create(owner=alice, name="Work")
    filed = Conversation.objects.create(owner=alice, title="budget filed", folder=work)
    pinned = Conversation.objects.create(owner=alice, title="budget pinned", pinned=True)
    archived = Conversation.objects.create(owner=alice, title="budget archived")
    organise.conversation_archive(conversation=archived, archived=True)

    def found(filters: SearchFilters | None = None) -> set[str]:
        return {hit.title for hit in search_conversations(alice, "budget", filters)}

    assert found() == {"budget filed", "budget pinned"}
    assert found(SearchFilters(folder=work)) == {filed.title}
    assert found(SearchFilters(pinned_only=True)) == {pinned.title}
    assert found(SearchFilters(archived=True)) == {archived.title}
    assert found(SearchFilters(archived=None)) == {filed.title, pinned.title, archived.title}


def test_a_folder_name_taken_at_the_same_moment_is_a_clear_refusal(alice, monkeypatch) -> None:
    """Two tabs making "Work" at once: the check passes in both, the constraint refuses the second."""
    organise.folder_create(owner=alice, name="Work")
    monkeypatch.setattr(organise, "check_folder_name", lambda *, owner, name, folder=None: "work")
    with pytest.raises(ChatInputError) as refused:
        organise.folder_create(owner=alice, name="work")
    assert refused.value.code == "duplicate_folder_name" and Folder.objects.count() == 1


def test_other_writes_on_a_stale_copy_keep_the_organising(alice) -> None:
    """A tab renames or continues a chat it loaded before another tab archived, pinned and moved it."""
    from webapp.chat import services

    stale = Conversation.objects.create(owner=alice, title="plan")
    folder = organise.folder_create(owner=alice, name="Work")
    organise.conversations_bulk_move(owner=alice, conversation_ids=[str(stale.id)], folder=folder)
    organise.conversations_bulk_pin(owner=alice, conversation_ids=[str(stale.id)], pinned=True)
    organise.conversations_bulk_archive(owner=alice, conversation_ids=[str(stale.id)], archived=True)
    services.conversation_rename(conversation=stale, title="renamed")
    services.add_message(conversation=stale, parent_id=None, role="user", content="more")
    fresh = Conversation.objects.get(pk=stale.pk)
    assert (fresh.title, fresh.folder, fresh.pinned) == ("renamed", folder, True)
    assert fresh.archived_at is not None
