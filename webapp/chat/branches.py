"""Operations on a conversation's tree: regenerate and edit add versions, switch picks the path shown.

Nothing here deletes: a regenerate adds a sibling reply, an edit a sibling
user message with a new reply to it, and a switch only moves the remembered
leaf (webapp/chat/tree.py). Like every write in services.py, the events go
out after the transaction commits. A socket still showing the old path hears
`removed` for the messages that left it, so an old client keeps a true view.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import transaction

from webapp.chat import events, live, quotas, tree
from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import live_reply
from webapp.chat.services import (
    ChatInputError,
    add_message,
    check_content,
    check_params,
    check_reply_params,
    create_reply,
    lock_idle,
    message_of,
)


def reply_regenerate(
    *, conversation: Conversation, raw_params: object = None, message_id: object = None
) -> Message:
    """A new version of a reply, from the same turns: a sibling of it, and the new end of the path.

    Without `message_id`, the reply that ends the path shown; when the path
    ends with a question instead (its reply was hidden), a reply to it.
    """
    with transaction.atomic():
        locked, state = lock_idle(conversation)
        params = check_params(raw_params, conversation=locked, max_tokens_limit=state.limits.max_tokens)
        messages = tree.tree_of(locked)
        old_path = messages.shown_path(locked.current_leaf_id)
        if message_id is not None:
            target = _shown_message(locked, message_id)
        else:
            target = Message.objects.filter(id=old_path[-1]).first() if old_path else None
        if target is None or (message_id is not None and target.role != Message.Role.ASSISTANT):
            raise ChatInputError("nothing_to_regenerate", "There is no reply to regenerate.")
        question_id = messages.parent[target.id] if target.role == Message.Role.ASSISTANT else target.id
        if question_id is None:
            raise ChatInputError("nothing_to_regenerate", "There is no reply to regenerate.")
        question = Message.objects.get(id=question_id)
        versions = tuple(messages.children[question_id])
        quotas.check_reply_allowed(user_id=locked.owner_id, state=state)
        _announce_left(locked, old_path, messages.path_to(question_id))
        reply = create_reply(locked, params, parent=question, queued=state.queued, earlier_versions=versions)
        locked.save(update_fields=["current_leaf", "updated_at"])
        return reply


def reply_edit(
    *, conversation: Conversation, message_id: object, content: object, raw_params: object = None
) -> Message:
    """A new version of one of the user's messages, answered again; the old version and its turns stay."""
    content = check_content(content)
    with transaction.atomic():
        locked, state = lock_idle(conversation)
        params = check_reply_params(
            conversation=locked,
            content=content,
            raw_params=raw_params,
            max_tokens_limit=state.limits.max_tokens,
        )
        original = _shown_message(locked, message_id)
        if original.role != Message.Role.USER:
            raise ChatInputError("not_a_user_message", "Only your own messages can be edited.")
        quotas.check_reply_allowed(user_id=locked.owner_id, state=state)
        messages = tree.tree_of(locked)
        old_path = messages.shown_path(locked.current_leaf_id)
        parent_id = messages.parent[original.id]
        versions = tuple(messages.children[parent_id])
        edited = add_message(
            conversation=locked,
            parent_id=parent_id,
            role=Message.Role.USER,
            content=content,
            status=Message.Status.COMPLETE,
        )
        position = tree.Position(parent_id, (*versions, edited.id), len(versions))
        _announce_left(locked, old_path, [*messages.path_to(parent_id), edited.id])
        transaction.on_commit(lambda: live.publish(locked.id, events.message_event(edited, position)))
        reply = create_reply(locked, params, parent=edited, queued=state.queued)
        locked.save(update_fields=["current_leaf", "updated_at"])
        return reply


def conversation_switch(*, conversation: Conversation, message_id: object) -> list[Message]:
    """Show the path through `message_id`, down to the newest message under it; every socket follows.

    Returns the new path, each message with its `position`. Refused while a
    reply is being written (the page would lose the reply it streams).
    """
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        target = _shown_message(locked, message_id)
        if live_reply(locked) is not None:
            raise ChatInputError("reply_in_progress", "A reply is still being written; stop it or wait.")
        messages = tree.tree_of(locked)
        leaf = messages.newest_under(target.id)
        locked.current_leaf_id = leaf
        # No updated_at: looking at another version is not news for the sidebar's order.
        Conversation.objects.filter(pk=locked.pk).update(current_leaf_id=leaf)
        path = tree.shown_path(locked)
        event = events.path_event(leaf, path)
        transaction.on_commit(lambda: live.publish(locked.id, event))
    conversation.current_leaf_id = leaf
    return path


def path_for_sync(*, conversation: Conversation) -> dict[str, Any]:
    """The `path` event a reconnected client asks for with `sync`."""
    conversation.refresh_from_db(fields=["current_leaf"])
    path = tree.shown_path(conversation)
    return events.path_event(path[-1].id if path else None, path)


def _shown_message(conversation: Conversation, message_id: object) -> Message:
    """A message its owner can see: one a moderator hid is as unknown as another conversation's."""
    message = message_of(conversation, message_id)
    if hasattr(message, "moderation_hidden"):
        raise ChatInputError("unknown_message", "No message of this conversation has that id.")
    return message


def _announce_left(conversation: Conversation, old_path: list[UUID], new_path: list[UUID]) -> None:
    """After commit: `removed` for the messages of the old path that the new one leaves out."""
    kept = set(new_path)
    left = [key for key in old_path if key not in kept]
    if left:
        transaction.on_commit(lambda: live.publish(conversation.id, events.removed_event(left)))
