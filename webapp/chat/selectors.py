"""Reads of conversations and messages, and the one access check for a conversation."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db.models import Exists, F, Func, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Lower
from django.utils import timezone

from webapp.accounts.access import GROUP_LIMIT_COLUMNS, Limits, can_moderate, limits_from_columns
from webapp.chat.models import Conversation, Folder, Message
from webapp.chat.tree import MessageTree, shown_path
from webapp.moderation.models import Sanction
from webapp.moderation.selectors import in_force_at
from webapp.prepared import Param, PreparedQuery


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


@dataclass(frozen=True)
class SendState:
    """What a send, a regenerate or an edit checks once it holds its locks (`send_state`)."""

    active: bool  # the account (a socket opened before a deactivation lives on until its close arrives)
    limits: Limits
    sanctioned: bool  # a ban or a suspension in force
    reply_in_progress: bool  # in this conversation
    live_replies: int  # the person's, queued or streaming over all their conversations (0 unless counted)
    queued: int  # replies queued over the deployment: the new one's place in the queue
    # Where a new message goes: the remembered leaf, else the newest message (None: the
    # conversation is empty), and whether it will be the only version there that its owner sees.
    parent_id: UUID | None
    only_child: bool


def send_state(*, conversation_id: UUID, owner_id: int, leaf_id: UUID | None) -> SendState:
    """`SendState` in one query, compiled once (webapp/prepared.py): it is on every send's first-token path.

    Read after the locks are taken: in PostgreSQL's READ COMMITTED each
    statement sees what committed before it began, so a racing send's reply
    is counted here, which a subquery of the locking statement would miss.
    """
    variant = (bool(settings.MAX_LIVE_REPLIES_PER_USER), leaf_id is not None)
    rows = _SEND_STATE.rows(
        variant, conversation_id=conversation_id, owner_id=owner_id, leaf_id=leaf_id, now=timezone.now()
    )
    active, sanctioned, in_progress, live_replies, queued, newest_id, leaf_has_children, leaf_hidden = rows[
        0
    ][:8]
    parent_id = leaf_id if leaf_id is not None else newest_id
    return SendState(
        active=active,
        limits=limits_from_columns(row[8:] for row in rows),
        sanctioned=sanctioned,
        reply_in_progress=in_progress,
        live_replies=live_replies,
        queued=queued,
        parent_id=parent_id,
        # Else tree.message_position works it out: a hidden parent's children hang higher up.
        only_child=parent_id is None or (leaf_id is not None and not leaf_has_children and not leaf_hidden),
    )


def _send_state_query(variant: Hashable) -> QuerySet[Any]:
    count_live, leaf_known = variant  # type: ignore[misc]
    conversation_id = Param("conversation_id", Conversation._meta.pk)
    leaf_id = Param("leaf_id", Message._meta.pk)
    live = Message.objects.filter(role=Message.Role.ASSISTANT, status__in=Message.LIVE_STATUSES)
    messages = Message.objects.filter(conversation_id=conversation_id)
    no = Value(None, output_field=Message._meta.pk)
    return (
        get_user_model()
        .objects.filter(pk=Param("owner_id", get_user_model()._meta.pk))
        .annotate(
            sanctioned=Exists(
                Sanction.objects.filter(
                    in_force_at(Param("now", Sanction._meta.get_field("until"))), user_id=OuterRef("pk")
                )
            ),
            in_progress=Exists(live.filter(conversation_id=conversation_id)),
            live_replies=_count(live.filter(conversation__owner_id=OuterRef("pk")))
            if count_live
            else Value(0),
            queued=_count(Message.objects.filter(status=Message.Status.QUEUED)),
            newest_id=no
            if leaf_known
            else Subquery(messages.order_by("-created_at", "-id").values("id")[:1]),
            leaf_has_children=Exists(Message.objects.filter(parent_id=leaf_id))
            if leaf_known
            else Value(False),
            leaf_hidden=(
                Exists(Message.objects.filter(pk=leaf_id, moderation_hidden__isnull=False))
                if leaf_known
                else Value(False)
            ),
        )
        .values_list(
            "is_active",
            "sanctioned",
            "in_progress",
            "live_replies",
            "queued",
            "newest_id",
            "leaf_has_children",
            "leaf_hidden",
            *GROUP_LIMIT_COLUMNS,
        )
    )


_SEND_STATE = PreparedQuery(_send_state_query)


def _count(rows: QuerySet[Message]) -> Subquery:
    """COUNT(*) of `rows` as a subquery (a plain Func: no GROUP BY joins the outer query)."""
    return Subquery(
        rows.order_by()
        .annotate(count=Func(F("pk"), function="COUNT", output_field=IntegerField()))
        .values("count")
    )


def prompt_history(reply: Message) -> list[dict[str, str]]:
    """The turns a reply answers, in the shape `encode_chat` takes: the path from the first message to it.

    Only the reply's own branch counts (webapp/chat/tree.py), so two versions
    of a reply share the turns, and the token ids, of the path before them.
    Replies that ended with no text (failed, blocked, stopped before their
    first token) or that a moderator hid are left out together with the
    question they leave unanswered, so the turns still alternate
    user/assistant; the last user message is always kept.
    """
    return path_turns(conversation_id=reply.conversation_id, parent_id=reply.parent_id)


def path_turns(*, conversation_id: UUID, parent_id: UUID | None) -> list[dict[str, str]]:
    """`prompt_history` of a reply under `parent_id`: one query, compiled once (on every reply's first-token path)."""
    rows = _CONVERSATION_ROWS.rows(conversation_id=conversation_id)
    hidden = {key for key, _, hidden_id, *_ in rows if hidden_id is not None}
    path = MessageTree([(key, parent) for key, parent, *_ in rows], hidden).path_to(parent_id)
    by_id = {
        key: (role, content) for key, _, _, role, content, status in rows if status != Message.Status.BLOCKED
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


# Every message of a conversation in creation order, as `tree.tree_of` reads them, with its text.
_CONVERSATION_ROWS = PreparedQuery(
    lambda _: (
        Message.objects.filter(conversation_id=Param("conversation_id", Conversation._meta.pk))
        .annotate(hidden_id=F("moderation_hidden__id"))
        .order_by("created_at", "id")
        .values_list("id", "parent_id", "hidden_id", "role", "content", "status")
    )
)
