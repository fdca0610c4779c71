"""Writes of share links: share a path as a snapshot, revoke, take down (audited), continue as a copy."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from webapp.accounts.audit import audit_record
from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import messages_of
from webapp.chat.services import ChatInputError, add_message, check_title, conversation_create
from webapp.moderation.services import check_not_sanctioned
from webapp.sharing.models import SharedMessage, ShareLink
from webapp.sharing.selectors import shared_messages, token_hash

TOKEN_BYTES = 24  # 192 random bits: guessing a live link is hopeless


class ShareInputError(Exception):
    """A share the server refuses; `code` is stable, `message` is for people, `status` the HTTP answer."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def check_audience(audience: object) -> str:
    if audience not in ShareLink.Audience.values:
        raise ShareInputError(
            "invalid_audience", "Choose who may open the link: anyone, or signed-in people."
        )
    return str(audience)


def check_share_allowed(*, owner: AbstractBaseUser) -> None:
    """At most SHARE_LINKS_PER_HOUR links made per person in any hour (revoked ones count too)."""
    limit = settings.SHARE_LINKS_PER_HOUR
    if limit <= 0:
        return
    since = timezone.now() - timedelta(hours=1)
    if ShareLink.objects.filter(owner=owner, created_at__gte=since).count() >= limit:
        raise ShareInputError(
            "share_rate_limited", f"You can make {limit} share links an hour; try again later.", status=429
        )


def share_link_create(
    *, owner: AbstractBaseUser, conversation: Conversation, audience: object
) -> tuple[ShareLink, str]:
    """Share the path shown now, as a snapshot; returns the link and its token (shown once, never stored).

    Left out of the snapshot: replies still being written, and blocked ones
    (hidden ones are already off the path its owner sees).
    """
    checked = check_audience(audience)
    if conversation.is_temporary:
        raise ShareInputError("temporary_chat", "A temporary chat can't be shared.")
    try:
        check_not_sanctioned(owner)  # a suspended person publishes nothing, as they send nothing
    except ChatInputError as error:
        raise ShareInputError(
            error.code, error.message.replace("nothing was sent", "nothing was shared"), status=403
        ) from None
    check_share_allowed(owner=owner)
    path = [
        message
        for message in messages_of(conversation)
        if message.status not in (*Message.LIVE_STATUSES, Message.Status.BLOCKED) and message.content
    ]
    if not path:
        raise ShareInputError("nothing_to_share", "This conversation has no messages to share yet.")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with transaction.atomic():
        link = ShareLink.objects.create(
            conversation=conversation,
            owner=owner,
            token_hash=token_hash(token),
            audience=checked,
            title=str(conversation),
        )
        SharedMessage.objects.bulk_create(
            SharedMessage(
                link=link, message=message, position=number, role=message.role, content=message.content
            )
            for number, message in enumerate(path)
        )
    return link, token


def share_link_revoke(*, link: ShareLink) -> ShareLink:
    """The owner ends a link; revoking twice changes nothing."""
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])
    return link


def share_link_take_down(*, moderator: AbstractBaseUser, link: ShareLink) -> ShareLink:
    """A moderator ends anybody's link, in the audit log; taking it down twice logs nothing."""
    with transaction.atomic():
        locked = ShareLink.objects.select_for_update().get(pk=link.pk)
        if locked.taken_down_at is None:
            locked.taken_down_at, locked.taken_down_by = timezone.now(), moderator
            locked.save(update_fields=["taken_down_at", "taken_down_by"])
            audit_record(
                actor=moderator,
                action="take_down_share_link",
                target_type="share_link",
                target_id=locked.pk,
                detail={"conversation_id": str(locked.conversation_id), "owner_id": locked.owner_id},
            )
    return locked


def share_link_continue(*, link: ShareLink, user: AbstractBaseUser) -> Conversation:
    """A new conversation of `user` with the snapshot's messages (as shown now) as one path."""
    with transaction.atomic():
        copy = conversation_create(owner=user)
        copy.title = check_title(f"Copy of {link.title or 'a shared chat'}"[:200])
        copy.save(update_fields=["title"])
        parent_id = None
        for shared in shared_messages(link):
            parent_id = add_message(
                conversation=copy, parent_id=parent_id, role=shared.role, content=shared.content
            ).id
        Conversation.objects.filter(pk=copy.pk).update(current_leaf_id=parent_id)
    return copy
