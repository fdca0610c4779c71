"""Reads of a person's account settings."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from webapp.accounts.models import AccountSettings


def retention_choices() -> list[int]:
    """The retention times a person may choose, in days: those shorter than the deployment's limit."""
    limit = settings.RETENTION_DAYS
    return sorted(days for days in set(settings.RETENTION_CHOICES_DAYS) if not limit or days < limit)


def account_retention_days(user: AbstractBaseUser) -> int | None:
    """The person's own choice, None when they never chose a shorter time."""
    return AccountSettings.objects.filter(user=user).values_list("retention_days", flat=True).first()


def effective_retention_days(user: AbstractBaseUser) -> int | None:
    """How long this person's conversations are kept untouched, in days; None: for ever."""
    candidates = [days for days in (settings.RETENTION_DAYS, account_retention_days(user)) if days]
    return min(candidates, default=None)
