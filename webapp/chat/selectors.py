"""Reads of conversations and messages, and the one access check for a conversation."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.db.models.functions import Lower

from webapp.accounts.access import can_moderate
from webapp.chat.models import Conversation, Folder, Message
from webapp.chat.tree import shown_path, tree_of


class ConversationNotFound(Exception):
    """No conversation has that id."""


class ConversationForbidden(Exception):
    """The conversation exists but belongs to somebody else."""


class FolderNotFound(Exception):
    """No folder of this person has that id (somebody else's looks the same)."""


def access_conversation(
    user: AbstractBaseUser | AnonymousUser, conversation_id: UUID | str, *, allow_staff: bool = False
) -> Conversation:
    """The only way to load a conversation for a user: views, sockets and exports all come here.

    `allow_staff` lets moderators (webapp.accounts.access) read anybody's
    conversation (exports); nothing that writes to a conversation passes it.
    """
    try:
        conversation = Conversation.objects.get(id=conversation_id)
    except (Conversation.DoesNotExist, ValueError, ValidationError):
        raise ConversationNotFound(str(conversation_id)) from None
    if not user.is_authenticated:
        raise ConversationForbidden(str(conversation_id))
    if conversation.owner_id != user.pk and not (allow_staff and can_moderate(user)):
        raise ConversationForbidden(str(conversation_id))
    return conversation


def conversations_for_user(user: AbstractBaseUser) -> QuerySet[Conversation]:
    """A person's conversations for lists, search and exports.

    Left out: API requests not to be stored, and temporary chats (`expires_at` set).
    """
    return (
        without_temporary(Conversation.objects.filter(owner=user))
        .exclude(api_link__stored=False)
        .order_by("-updated_at")
    )


def listed_conversations(
    user: AbstractBaseUser, *, folder: Folder | None = None, archived: bool = False
) -> QuerySet[Conversation]:
    """The sidebar's and the list page's conversations: pinned first, then newest first.

    Archived ones only in the archive (`archived=True`), and only those.
    """
    conversations = conversations_for_user(user).filter(archived_at__isnull=not archived)
    if folder is not None:
        conversations = conversations.filter(folder=folder)
    return conversations.select_related("folder").order_by("-pinned", "-updated_at")


def folder_for_user(user: AbstractBaseUser | AnonymousUser, folder_id: object) -> Folder:
    """The only way to load a folder for a user: their own, or FolderNotFound."""
    if not user.is_authenticated:
        raise FolderNotFound(str(folder_id))
    try:
        return Folder.objects.get(owner=user, id=int(str(folder_id)))
    except (Folder.DoesNotExist, ValueError, OverflowError):
        raise FolderNotFound(str(folder_id)) from None


def optional_folder(user: AbstractBaseUser | AnonymousUser, folder_id: str) -> Folder | None:
    """A form's or query's folder field: empty for none, else `folder_for_user`."""
    return folder_for_user(user, folder_id) if folder_id else None


def folders_of(user: AbstractBaseUser) -> QuerySet[Folder]:
    """A person's folders by name."""
    return Folder.objects.filter(owner=user).order_by(Lower("name"))


@dataclass
class SidebarGroups:
    """The sidebar's conversations: pinned on top, then each folder's, then those in none."""

    pinned: list[Conversation]
    folders: list[tuple[Folder, list[Conversation]]]
    unfiled: list[Conversation]


def sidebar_groups(recent: list[Conversation], folders: list[Folder]) -> SidebarGroups:
    """Group the sidebar's recent conversations (listed_conversations' order kept in each group)."""
    in_folder: dict[int, list[Conversation]] = {folder.id: [] for folder in folders}
    groups = SidebarGroups(pinned=[], folders=[], unfiled=[])
    for conversation in recent:
        if conversation.pinned:
            groups.pinned.append(conversation)
        elif conversation.folder_id in in_folder:
            in_folder[conversation.folder_id].append(conversation)
        else:
            groups.unfiled.append(conversation)
    groups.folders = [(folder, in_folder[folder.id]) for folder in folders]
    return groups


def without_temporary(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Leave out temporary chats: every list, search and export (the person's, staff's, datasets') does."""
    return conversations.filter(expires_at__isnull=True)


def visible(messages: QuerySet[Message]) -> QuerySet[Message]:
    """Leave out the replies a moderator hid: their owner no longer sees them, nor does the model."""
    return messages.filter(moderation_hidden__isnull=True)


def messages_of(conversation: Conversation) -> list[Message]:
    """The messages of the path shown, each with its `position` among its versions."""
    return shown_path(conversation)


def live_reply(conversation: Conversation) -> Message | None:
    """The reply still queued or streaming in this conversation, if any."""
    return (
        conversation.messages.filter(role=Message.Role.ASSISTANT, status__in=Message.LIVE_STATUSES)
        .order_by("-created_at")
        .first()
    )


def queue_position(reply: Message) -> int:
    """How many replies, over the whole deployment, were queued before this one."""
    return Message.objects.filter(status=Message.Status.QUEUED, created_at__lt=reply.created_at).count()


def prompt_history(reply: Message) -> list[dict[str, str]]:
    """The turns a reply answers, in the shape `encode_chat` takes: the path from the first message to it.

    Only the reply's own branch counts (webapp/chat/tree.py), so two versions
    of a reply share the turns, and the token ids, of the path before them.
    Replies that ended with no text (failed, blocked, stopped before their
    first token) or that a moderator hid are left out together with the
    question they leave unanswered, so the turns still alternate
    user/assistant; the last user message is always kept.
    """
    path = tree_of(reply.conversation).path_to(reply.parent_id)
    by_id = {
        key: (role, content)
        for key, role, content in Message.objects.filter(id__in=path)
        .exclude(status=Message.Status.BLOCKED)
        .values_list("id", "role", "content")
    }
    turns: list[dict[str, str]] = []
    for role, content in (by_id[key] for key in path if key in by_id):
        if role == Message.Role.USER:
            if turns and turns[-1]["role"] == Message.Role.USER:
                turns.pop()  # its reply is missing: drop the unanswered question
            turns.append({"role": "user", "content": content})
        elif content and turns and turns[-1]["role"] == Message.Role.USER:
            turns.append({"role": "assistant", "content": content})
    return turns
