"""Reads of user management: people found by a search, with their role, groups, usage and sanctions."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from webapp.accounts.access import role_from
from webapp.accounts.models import Account, Invitation, Role
from webapp.chat.models import Message
from webapp.moderation.models import AuditLogEntry, Sanction
from webapp.moderation.selectors import in_force

STATUSES = ("all", "pending", "active", "deactivated", "declined")
MAX_QUERY_CHARS = 150


@dataclass
class Person:
    """One row of the people list: who, what they may do, and what they did this month."""

    user: AbstractBaseUser
    role: Role
    approval: str
    groups: list[str] = field(default_factory=list)
    messages_this_month: int = 0
    tokens_this_month: int = 0
    sanctions: list[Sanction] = field(default_factory=list)
    last_activity: dt.datetime | None = None

    @property
    def pending(self) -> bool:
        return self.approval == Account.Approval.PENDING

    @property
    def status(self) -> str:
        if self.approval != Account.Approval.APPROVED:
            return self.approval  # pending or declined
        return "active" if self.user.is_active else "deactivated"


def people_matching(*, query: str = "", status: str = "all") -> QuerySet[AbstractBaseUser]:
    """People whose username or e-mail contains `query`, by status; newest sign-ups first."""
    people = get_user_model().objects.all()
    query = query.strip()[:MAX_QUERY_CHARS]
    if query:
        people = people.filter(Q(username__icontains=query) | Q(email__icontains=query))
    waiting = Q(account__approval__in=[Account.Approval.PENDING, Account.Approval.DECLINED])
    if status in ("pending", "declined"):
        people = people.filter(account__approval=status)
    elif status == "active":
        people = people.filter(is_active=True)
    elif status == "deactivated":
        people = people.filter(is_active=False).exclude(waiting)
    return people.order_by("-date_joined", "-id")


def month_start(now: dt.datetime | None = None) -> dt.datetime:
    now = timezone.now() if now is None else now
    return now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def people_rows(users: list[AbstractBaseUser]) -> list[Person]:
    """The rows for these people, in their order, in a fixed number of queries."""
    ids = [user.pk for user in users]
    accounts = {a.user_id: a for a in Account.objects.filter(user_id__in=ids)}
    groups: dict[int, list[str]] = defaultdict(list)
    for user_id, name in Group.objects.filter(user__id__in=ids).values_list("user__id", "name"):
        groups[user_id].append(name)
    usage = {
        row["conversation__owner_id"]: row
        for row in Message.objects.filter(conversation__owner_id__in=ids, created_at__gte=month_start())
        .values("conversation__owner_id")
        .annotate(
            sent=Count("id", filter=Q(role=Message.Role.USER)),
            tokens=Sum(Coalesce(F("prompt_tokens"), 0) + Coalesce(F("completion_tokens"), 0)),
        )
    }
    last_message = dict(
        Message.objects.filter(conversation__owner_id__in=ids, role=Message.Role.USER)
        .values("conversation__owner_id")
        .annotate(last=Max("created_at"))
        .values_list("conversation__owner_id", "last")
    )
    sanctions: dict[int, list[Sanction]] = defaultdict(list)
    for sanction in in_force(Sanction.objects.filter(user_id__in=ids)):
        sanctions[sanction.user_id].append(sanction)
    rows = []
    for user in users:
        account = accounts.get(user.pk)
        used = usage.get(user.pk, {})
        moments = [moment for moment in (user.last_login, last_message.get(user.pk)) if moment]
        rows.append(
            Person(
                user=user,
                # What the role will be while active: a deactivated person's is kept for their return.
                role=role_from(account.role if account else None, user),
                approval=account.approval if account else Account.Approval.APPROVED,
                groups=sorted(groups[user.pk]),
                messages_this_month=used.get("sent", 0),
                tokens_this_month=used.get("tokens") or 0,
                sanctions=sanctions[user.pk],
                last_activity=max(moments) if moments else None,
            )
        )
    return rows


def person_history(user: AbstractBaseUser) -> QuerySet[AuditLogEntry]:
    """What administrators and moderators did to this person, newest first."""
    return AuditLogEntry.objects.filter(target_type="user", target_id=str(user.pk)).select_related(
        "moderator"
    )


def groups_with_limits() -> QuerySet[Group]:
    return Group.objects.select_related("limits").annotate(members=Count("user")).order_by("name")


def recent_invitations() -> QuerySet[Invitation]:
    return Invitation.objects.select_related("group", "created_by", "used_by")[:50]
