"""A person's own retention choice: the reads and the write of the account page (docs/operations.md)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from webapp.accounts.models import AccountSettings
from webapp.accounts.services import AccountInputError


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


# What the form sends for "as long as the deployment keeps conversations".
RETENTION_DEFAULT = ""


def check_retention_days(value: object) -> int | None:
    """The form's value as days, or None for the deployment's own limit; AccountInputError otherwise."""
    if value is None or value == RETENTION_DEFAULT:
        return None
    choices = retention_choices()
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) in choices:
        return int(value)
    offered = ", ".join(str(days) for days in choices) or "none"
    raise AccountInputError(
        "bad_retention_days",
        f"Choose how long to keep your conversations from the list (days: {offered}); "
        "it cannot be longer than this server keeps them.",
    )


def account_retention_set(*, user: AbstractBaseUser, retention_days: int | None) -> AccountSettings:
    """Store a checked retention choice (from `check_retention_days`)."""
    account, _ = AccountSettings.objects.update_or_create(
        user=user, defaults={"retention_days": retention_days}
    )
    return account
