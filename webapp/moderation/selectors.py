"""Reads of the moderation app."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from inference.moderation.base import Action
from webapp.moderation.models import CategoryPolicy, ModerationEvent, Report, ReviewStatus, Rule, Sanction
from webapp.prepared import PreparedQuery


def sanctions_in_force(user: AbstractBaseUser | int) -> QuerySet[Sanction]:
    """Bans and suspensions not revoked nor expired (warnings do not restrict)."""
    user_id = user if isinstance(user, int) else user.pk
    return in_force(Sanction.objects.filter(user_id=user_id))


def in_force(sanctions: QuerySet[Sanction]) -> QuerySet[Sanction]:
    """Of these sanctions, the bans and suspensions not revoked nor expired."""
    return sanctions.filter(in_force_at(timezone.now()))


def in_force_at(now: datetime | Any) -> Q:
    """A filter on sanctions: in force at `now` (a datetime, or a query's parameter for one)."""
    return Q(revoked_at__isnull=True) & (
        Q(kind=Sanction.Kind.BAN) | Q(kind=Sanction.Kind.SUSPEND, until__gt=now)
    )


def legal_hold(*, now: datetime) -> Q:
    """A filter on conversations: those the moderators still need, which nothing may delete yet.

    A conversation is held while any of its messages has an open moderation
    event or an open report, and while its owner is banned or suspended;
    closing the item (dismiss, confirm) or the sanction (revoked, ended) lifts it.
    Each is one uncorrelated subquery over the few open items, read once per
    query rather than once per conversation.
    """
    open_events = ModerationEvent.objects.filter(status=ReviewStatus.OPEN, message__isnull=False)
    open_reports = Report.objects.filter(status=ReviewStatus.OPEN, message__isnull=False)
    return (
        Q(id__in=open_events.values("message__conversation_id"))
        | Q(id__in=open_reports.values("message__conversation_id"))
        | Q(owner_id__in=Sanction.objects.filter(in_force_at(now)).values("user_id"))
    )


def active_sanction(user: AbstractBaseUser | int) -> Sanction | None:
    """The sanction that restricts the user now: a ban first, else the suspension that ends last."""
    in_force = list(sanctions_in_force(user))
    bans = [s for s in in_force if s.kind == Sanction.Kind.BAN]
    if bans:
        return bans[0]
    return max(in_force, key=lambda s: s.until, default=None)


def is_banned(user: AbstractBaseUser | int) -> bool:
    return sanctions_in_force(user).filter(kind=Sanction.Kind.BAN).exists()


def unseen_warnings(user: AbstractBaseUser) -> QuerySet[Sanction]:
    """Warnings the user's pages have not shown yet, oldest first."""
    return Sanction.objects.filter(
        user=user, kind=Sanction.Kind.WARN, revoked_at__isnull=True, seen_at__isnull=True
    ).order_by("created_at")


def enabled_rules() -> list[tuple[object, ...]]:
    """The enabled rules as plain rows: what the worker's chain is built from, to see if it changed.

    Read for every reply the worker starts: compiled once (webapp/prepared.py).
    """
    return _ENABLED_RULES.rows()


_ENABLED_RULES = PreparedQuery(
    lambda _: (
        Rule.objects.filter(enabled=True)
        .order_by("pk")
        .values_list("pk", "category", "action", "kind", "pattern")
    )
)


def policy_mapping() -> dict[str, tuple[Action, float]]:
    """Every category's policy as plain values, for the worker's chain (no Django there)."""
    return {category: (Action(action), threshold) for category, action, threshold in _POLICIES.rows()}


_POLICIES = PreparedQuery(lambda _: CategoryPolicy.objects.values_list("category", "action", "threshold"))
