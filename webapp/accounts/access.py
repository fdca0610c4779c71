"""The one access layer: who may do what, and with which limits (docs/identity.md).

Every page, socket, API call, export and dashboard asks here, never
`user.is_staff` itself:
- `role_of(user)`: user, moderator or administrator. A superuser is an
  administrator; Django's `is_staff` counts as a moderator, so staff from
  before roles keep what they could do (demoting someone to `user` clears it).
- `can_moderate(user)`: the moderation dashboard, its socket and actions, and
  reading anybody's conversation for review (exports).
- `can_manage_users(user)`: the user management pages (/manage/).
- `limits_for(user)` / `limits_for_id(user_id)`: messages a minute, tokens a
  day, the largest `max_tokens`, API and exports; the most generous over the
  person's groups, else the settings' defaults.
- `moderator_required` / `administrator_required`: view decorators (log in
  first, then 403).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from webapp.accounts.models import Account, GroupLimits, Role

T = TypeVar("T")
LIMIT_FIELDS = ("messages_per_minute", "tokens_per_day", "max_tokens", "api_allowed", "exports_allowed")
RANK = {Role.USER: 0, Role.MODERATOR: 1, Role.ADMINISTRATOR: 2}
# Cached on the user object for the request or socket: a page asks several times.
_CACHE = "_access_role"


def role_of(user: AbstractBaseUser | AnonymousUser | None) -> Role:
    """The person's role; anonymous and inactive people are ordinary users with no rights."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.USER
    cached = getattr(user, _CACHE, None)
    if cached is not None:
        return cached
    stored = Account.objects.filter(user_id=user.pk).values_list("role", flat=True).first()
    role = role_from(stored, user)
    setattr(user, _CACHE, role)
    return role


def role_from(stored: str | None, user: AbstractBaseUser) -> Role:
    """The role of an active person whose Account row says `stored` (None: no row), with Django's flags."""
    role = Role(stored) if stored else Role.USER
    if user.is_superuser:
        return Role.ADMINISTRATOR
    if user.is_staff and RANK[role] < RANK[Role.MODERATOR]:
        return Role.MODERATOR
    return role


def forget_role(user: AbstractBaseUser) -> None:
    """Drop the cached role after changing it (services do)."""
    if hasattr(user, _CACHE):
        delattr(user, _CACHE)


def has_role(user: AbstractBaseUser | AnonymousUser | None, role: Role) -> bool:
    return RANK[role_of(user)] >= RANK[role]


def can_moderate(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """The moderation dashboard, its live socket and its actions; reviewing anybody's conversation."""
    return has_role(user, Role.MODERATOR)


def can_manage_users(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """The user management pages: roles, groups and limits, approvals, invitations."""
    return has_role(user, Role.ADMINISTRATOR)


def is_protected_from_sanctions(user: AbstractBaseUser) -> bool:
    """Moderators, administrators and Django staff are not sanctioned from the dashboard."""
    return can_moderate(user) or user.is_staff or user.is_superuser


# --- limits ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What one person may do; for the two counts 0 means no limit."""

    messages_per_minute: int
    tokens_per_day: int
    max_tokens: int
    api_allowed: bool
    exports_allowed: bool


def default_limits() -> Limits:
    """The settings' limits, for people in no group that has limits."""
    return Limits(
        messages_per_minute=settings.RATE_LIMIT_MESSAGES_PER_MINUTE,
        tokens_per_day=settings.QUOTA_TOKENS_PER_DAY,
        max_tokens=_context_capped(settings.MAX_TOKENS_LIMIT),
        api_allowed=settings.API_ALLOWED_DEFAULT,
        exports_allowed=settings.EXPORTS_ALLOWED_DEFAULT,
    )


def limits_for(user: AbstractBaseUser) -> Limits:
    return limits_for_id(user.pk)


def limits_for_id(user_id: object) -> Limits:
    """The most generous limits over the person's groups (a blank value is the default), else the defaults."""
    return most_generous(GroupLimits.objects.filter(group__user__id=user_id), default_limits())


# A person's group limits as columns of a query on users: one row per group (a join).
GROUP_LIMIT_COLUMNS = tuple(f"groups__limits__{name}" for name in ("group_id", *LIMIT_FIELDS))


def limits_from_columns(rows: Iterable[Sequence[object]]) -> Limits:
    """`limits_for_id` from rows of GROUP_LIMIT_COLUMNS, read with whatever else a query needs."""
    found = [dict(zip(("group_id", *LIMIT_FIELDS), row, strict=True)) for row in rows]
    # A person in no group, or in a group without limits, comes back as a row of None: no limits from it.
    return most_generous(
        [GroupLimits(**row) for row in found if row["group_id"] is not None], default_limits()
    )


def active_limits_for_id(user_id: object) -> Limits | None:
    """`limits_for_id` and whether the account is active, in one query: None when it is not."""
    rows = list(get_user_model().objects.filter(pk=user_id, is_active=True).values_list(*GROUP_LIMIT_COLUMNS))
    return limits_from_columns(rows) if rows else None


def most_generous(rows: Iterable[GroupLimits], defaults: Limits) -> Limits:
    """Merge groups' limits: per limit, the most generous value (0 beats any count: it is no limit)."""
    merged: Limits | None = None
    for row in rows:
        limits = Limits(
            messages_per_minute=_or(row.messages_per_minute, defaults.messages_per_minute),
            tokens_per_day=_or(row.tokens_per_day, defaults.tokens_per_day),
            max_tokens=_context_capped(_or(row.max_tokens, defaults.max_tokens)),
            api_allowed=_or(row.api_allowed, defaults.api_allowed),
            exports_allowed=_or(row.exports_allowed, defaults.exports_allowed),
        )
        merged = limits if merged is None else _wider(merged, limits)
    return merged or defaults


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


def _count(a: int, b: int) -> int:
    return 0 if 0 in (a, b) else max(a, b)


def _wider(a: Limits, b: Limits) -> Limits:
    return Limits(
        messages_per_minute=_count(a.messages_per_minute, b.messages_per_minute),
        tokens_per_day=_count(a.tokens_per_day, b.tokens_per_day),
        max_tokens=max(a.max_tokens, b.max_tokens),
        api_allowed=a.api_allowed or b.api_allowed,
        exports_allowed=a.exports_allowed or b.exports_allowed,
    )


def _context_capped(max_tokens: int) -> int:
    # A reply needs at least one token of prompt beside it.
    return min(max_tokens, settings.CONTEXT_LIMIT - 1)


# --- views -----------------------------------------------------------------------------


def _requiring(check: Callable[..., bool], refusal: str) -> Callable[..., Callable[..., HttpResponse]]:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        @login_required
        def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            if not check(request.user):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# Log in first (a redirect); then 403 for anybody below the role, checked before anything else runs.
moderator_required = _requiring(can_moderate, "The moderation dashboard is for moderators.")
administrator_required = _requiring(can_manage_users, "User management is for administrators.")
