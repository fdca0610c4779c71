"""Reads of share links: the one access check by token, a person's links, staff's list, the snapshot shown."""

from __future__ import annotations

import hashlib

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from webapp.chat.models import Message
from webapp.sharing.models import SharedMessage, ShareLink


class ShareLinkNotFound(Exception):
    """No live link has that token: unknown, revoked, taken down or gone with its chat look alike."""


class ShareLinkNeedsSignIn(Exception):
    """The link is for signed-in people and the visitor is anonymous."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def live_links() -> QuerySet[ShareLink]:
    return ShareLink.objects.filter(revoked_at__isnull=True, taken_down_at__isnull=True)


def access_share_link(user: AbstractBaseUser | AnonymousUser, token: str) -> ShareLink:
    """The only way to load a link by its token, for the shared page and continuing it as a copy."""
    link = live_links().select_related("conversation").filter(token_hash=token_hash(token)).first()
    if link is None:
        raise ShareLinkNotFound()
    if link.audience == ShareLink.Audience.SIGNED_IN and not user.is_authenticated:
        raise ShareLinkNeedsSignIn()
    return link


def links_of(user: AbstractBaseUser) -> QuerySet[ShareLink]:
    """A person's links, live and ended, newest first (their page, with revoke)."""
    return ShareLink.objects.filter(owner=user).select_related("conversation", "taken_down_by")


def links_for_staff() -> QuerySet[ShareLink]:
    """Every live link, newest first (the moderators' page)."""
    return live_links().select_related("owner", "conversation")


def shared_messages(link: ShareLink) -> list[SharedMessage]:
    """The snapshot as it may be shown now: replies hidden or blocked since sharing are left out."""
    return list(
        link.snapshot.filter(message__moderation_hidden__isnull=True).exclude(
            message__status=Message.Status.BLOCKED
        )
    )
