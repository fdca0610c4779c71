"""Reads of the API app: a person's keys, and what moderation caught from a key."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from webapp.api.models import ApiKey
from webapp.moderation.models import ModerationEvent


def keys_of(user: AbstractBaseUser) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(owner=user).order_by("revoked_at", "-created_at")


def moderation_events_of_key(api_key: ApiKey) -> QuerySet[ModerationEvent]:
    """The moderation events of the requests this key made (for the staff dashboard)."""
    return ModerationEvent.objects.filter(message__conversation__api_link__api_key=api_key)
