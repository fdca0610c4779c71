"""Writes to a person's own account settings; `check_*` validates, `account_*` writes."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from webapp.accounts.models import AccountSettings
from webapp.accounts.selectors import retention_choices

# What the form sends for "as long as the deployment keeps conversations".
RETENTION_DEFAULT = ""


class AccountInputError(ValueError):
    """A value the account page refuses; nothing is stored."""


def check_retention_days(value: object) -> int | None:
    """The form's value as days, or None for the deployment's own limit; AccountInputError otherwise."""
    if value is None or value == RETENTION_DEFAULT:
        return None
    choices = retention_choices()
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) in choices:
        return int(value)
    offered = ", ".join(str(days) for days in choices) or "none"
    raise AccountInputError(
        f"Choose how long to keep your conversations from the list (days: {offered}); "
        "it cannot be longer than this server keeps them."
    )


def account_retention_set(*, user: AbstractBaseUser, retention_days: int | None) -> AccountSettings:
    """Store a checked retention choice (from `check_retention_days`)."""
    account, _ = AccountSettings.objects.update_or_create(
        user=user, defaults={"retention_days": retention_days}
    )
    return account
