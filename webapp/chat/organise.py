"""Organising conversations: folders, pins, the archive and bulk actions.

Writes only, HackSoft style: `check_*` validates and raises ChatInputError,
the rest write. Nothing here bumps a conversation's `updated_at` (moving or
pinning a chat is not news in it). No other tab's sidebar updates live for a
rename or delete today, so none does for these either: pages show them when
next loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from webapp.chat import services
from webapp.chat.models import Conversation, Folder
from webapp.chat.selectors import conversations_for_user
from webapp.chat.services import ChatInputError

# The bulk actions the list page's form offers.
BULK_ACTIONS = ("move", "archive", "unarchive", "pin", "unpin", "delete")


# --- folders ------------------------------------------------------------------


def check_folder_name(*, owner: AbstractBaseUser, name: object, folder: Folder | None = None) -> str:
    """A folder name: text, not empty, short enough, not another of this person's folders (any case)."""
    limit = Folder._meta.get_field("name").max_length
    cleaned = services.check_name(name, code="folder_name", what="folder name", limit=limit)
    others = Folder.objects.filter(owner=owner, name__iexact=cleaned)
    if folder is not None:
        others = others.exclude(pk=folder.pk)
    if others.exists():
        raise ChatInputError("duplicate_folder_name", f"You already have a folder named “{cleaned}”.")
    return cleaned


def folder_create(*, owner: AbstractBaseUser, name: object) -> Folder:
    if Folder.objects.filter(owner=owner).count() >= settings.MAX_FOLDERS:
        raise ChatInputError("too_many_folders", f"You can have at most {settings.MAX_FOLDERS} folders.")
    name = check_folder_name(owner=owner, name=name)
    try:
        with transaction.atomic():
            return Folder.objects.create(owner=owner, name=name)
    except IntegrityError:  # the same name made at the same moment, in another tab
        raise ChatInputError("duplicate_folder_name", f"You already have a folder named “{name}”.") from None


def folder_named(*, owner: AbstractBaseUser, name: str) -> Folder:
    """The person's folder of that name (any case), made if missing: where an import files a conversation."""
    folder = Folder.objects.filter(owner=owner, name__iexact=" ".join(name.split())).first()
    return folder or folder_create(owner=owner, name=name)


def folder_rename(*, folder: Folder, name: object) -> Folder:
    folder.name = check_folder_name(owner=folder.owner, name=name, folder=folder)
    folder.save(update_fields=["name"])
    return folder


def folder_delete(*, folder: Folder) -> None:
    """Delete a folder; its conversations stay, in no folder (the foreign key's SET_NULL)."""
    folder.delete()


# --- one conversation -------------------------------------------------------------


def conversation_move(*, conversation: Conversation, folder: Folder | None) -> Conversation:
    """Put a conversation in one of its owner's folders, or in none."""
    if folder is not None and folder.owner_id != conversation.owner_id:
        raise ChatInputError("unknown_folder", "No such folder.")
    conversation.folder = folder
    Conversation.objects.filter(pk=conversation.pk).update(folder=folder)
    return conversation


def conversation_pin(*, conversation: Conversation, pinned: bool) -> Conversation:
    conversation.pinned = pinned
    Conversation.objects.filter(pk=conversation.pk).update(pinned=pinned)
    return conversation


def conversation_archive(*, conversation: Conversation, archived: bool) -> Conversation:
    conversation.archived_at = timezone.now() if archived else None
    Conversation.objects.filter(pk=conversation.pk).update(archived_at=conversation.archived_at)
    return conversation


# --- bulk ----------------------------------------------------------------------------


def check_bulk_ids(*, owner: AbstractBaseUser, conversation_ids: Iterable[object]) -> list[Conversation]:
    """The listed conversations, all this person's, or ChatInputError and nothing to act on.

    One id that is unknown, malformed or somebody else's refuses the whole
    request: acting on the rest would change what the person did not ask for.
    """
    raw = list(conversation_ids)
    if not raw:
        raise ChatInputError("no_conversations", "Choose at least one conversation.")
    if len(raw) > settings.MAX_BULK_CONVERSATIONS:
        raise ChatInputError(
            "too_many_conversations",
            f"At most {settings.MAX_BULK_CONVERSATIONS} conversations at once.",
        )
    try:
        wanted = {UUID(str(value)) for value in raw}
    except ValueError:
        raise ChatInputError("unknown_conversation", "A chosen conversation does not exist.") from None
    found = list(conversations_for_user(owner).filter(pk__in=wanted))
    if len(found) != len(wanted):
        raise ChatInputError("unknown_conversation", "A chosen conversation does not exist.")
    return found


def conversations_bulk(
    *, owner: AbstractBaseUser, action: str, conversation_ids: Iterable[object], folder: Folder | None = None
) -> int:
    """The list page's form: one of BULK_ACTIONS on many conversations; how many it changed.

    `folder` is the destination of `move` (None: out of any folder).
    """
    ids = {"owner": owner, "conversation_ids": conversation_ids}
    if action == "move":
        return conversations_bulk_move(**ids, folder=folder)
    if action in ("archive", "unarchive"):
        return conversations_bulk_archive(**ids, archived=action == "archive")
    if action in ("pin", "unpin"):
        return conversations_bulk_pin(**ids, pinned=action == "pin")
    if action == "delete":
        return conversations_bulk_delete(**ids)
    raise ChatInputError("unknown_action", "Unknown action.")


@transaction.atomic
def conversations_bulk_move(
    *, owner: AbstractBaseUser, conversation_ids: Iterable[object], folder: Folder | None
) -> int:
    if folder is not None and folder.owner_id != owner.pk:
        raise ChatInputError("unknown_folder", "No such folder.")
    return _chosen(owner, conversation_ids).update(folder=folder)


@transaction.atomic
def conversations_bulk_archive(
    *, owner: AbstractBaseUser, conversation_ids: Iterable[object], archived: bool
) -> int:
    return _chosen(owner, conversation_ids).update(archived_at=timezone.now() if archived else None)


@transaction.atomic
def conversations_bulk_pin(
    *, owner: AbstractBaseUser, conversation_ids: Iterable[object], pinned: bool
) -> int:
    return _chosen(owner, conversation_ids).update(pinned=pinned)


@transaction.atomic
def conversations_bulk_delete(*, owner: AbstractBaseUser, conversation_ids: Iterable[object]) -> int:
    """Delete each as the sidebar's delete does (a reply in progress is stopped first); all or none."""
    conversations = check_bulk_ids(owner=owner, conversation_ids=conversation_ids)
    for conversation in conversations:
        services.conversation_delete(conversation=conversation)
    return len(conversations)


def _chosen(owner: AbstractBaseUser, conversation_ids: Iterable[object]) -> QuerySet[Conversation]:
    """The checked conversations, as a queryset for one UPDATE."""
    chosen = check_bulk_ids(owner=owner, conversation_ids=conversation_ids)
    return Conversation.objects.filter(pk__in=[c.pk for c in chosen])
