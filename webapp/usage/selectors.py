"""Usage counted from the stored messages: one aggregate query per figure, never a loop over rows.

A window is a range of UTC days (the quota's days). Messages are the
person's own (role `user`); replies, tokens in (`prompt_tokens`) and tokens
out (`completion_tokens`) are the assistant's messages. A day is the day a
message was created. Only what is stored is counted: a conversation deleted
(by its owner, by retention, an API request not kept) takes its usage with it.

Administrators see usage per *dimension*: a person, an API key, a group
(each an entry in DIMENSIONS: the path from a message to the id).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Count, F, Model, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.db.models.sql.compiler import SQLCompiler

from webapp.api.models import ApiKey
from webapp.chat.models import Message


@dataclass(frozen=True)
class Window:
    """UTC days from `first_day` to `last_day`, both included."""

    first_day: dt.date
    last_day: dt.date

    @property
    def days(self) -> list[dt.date]:
        return [
            self.first_day + dt.timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)
        ]

    @property
    def since(self) -> dt.datetime:
        return dt.datetime.combine(self.first_day, dt.time.min, tzinfo=dt.UTC)

    @property
    def until(self) -> dt.datetime:
        return dt.datetime.combine(self.last_day + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Usage:
    messages: int = 0
    replies: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class Dimension:
    """A way staff break usage down: the path from a message to an id, and what the id names."""

    slug: str  # in URLs: /usage/<slug>/
    title: str
    path: str  # from Message to the id
    model: Callable[[], type[Model]]
    label: Callable[[Any], str]
    related: tuple[str, ...] = ()

    def names(self, ids: Iterable[Any]) -> dict[Any, str]:
        found = self.model().objects.filter(pk__in=list(ids)).select_related(*self.related)
        return {row.pk: self.label(row) for row in found}

    def exists(self, value: Any) -> bool:
        return self.model().objects.filter(pk=value).exists()


DIMENSIONS = {
    "people": Dimension(
        "people", "person", "conversation__owner_id", get_user_model, lambda u: u.get_username()
    ),
    "keys": Dimension(
        "keys",
        "API key",
        "conversation__api_link__api_key_id",
        lambda: ApiKey,
        lambda key: f"{key.name} ({key.prefix}…, {key.owner.get_username()})",
        related=("owner",),
    ),
    # A person in two groups counts in both: a group's figure is what its members used.
    "groups": Dimension(
        "groups", "group", "conversation__owner__groups__id", lambda: Group, lambda g: g.name
    ),
}


class UtcDay(TruncDate):
    """The UTC day of a timestamp (TIME_ZONE is UTC: the quota's day).

    On SQLite, Django's TruncDate calls a Python function per row; a stored
    timestamp is UTC text there ("2026-11-29 17:21:18.123456"), so its first
    ten characters are the day, read by SQLite itself (bench/usage.py times
    both). PostgreSQL's own cast is TruncDate's.
    """

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.lhs)
        return f"substr({sql}, 1, 10)", list(params)


_TOTALS = {
    "messages": Count("id", filter=Q(role=Message.Role.USER)),
    "replies": Count("id", filter=Q(role=Message.Role.ASSISTANT)),
    "tokens_in": Coalesce(Sum("prompt_tokens"), 0),
    "tokens_out": Coalesce(Sum("completion_tokens"), 0),
}


def _messages(window: Window, filters: dict[str, Any]) -> QuerySet[Message]:
    return Message.objects.filter(created_at__gte=window.since, created_at__lt=window.until, **filters)


def _usage(row: dict[str, Any]) -> Usage:
    return Usage(row["messages"], row["replies"], row["tokens_in"], row["tokens_out"])


def usage_per_day(
    window: Window, *, dimension: Dimension | None = None, value: Any = None
) -> dict[dt.date, Usage]:
    """Usage per day, only days that had some: everybody's; with a dimension, what has one
    (every message has a person; API keys: only the API's); with a value too, one person's or key's."""
    if dimension is None:
        filters = {}
    elif value is None:
        filters = {f"{dimension.path}__isnull": False}
    else:
        filters = {dimension.path: value}
    rows = (
        _messages(window, filters)
        .annotate(day=UtcDay("created_at"))
        .values("day")
        .annotate(**_TOTALS)
        .order_by("day")
    )
    return {row["day"]: _usage(row) for row in rows}


def usage_of_person(window: Window, user_id: Any) -> dict[dt.date, Usage]:
    """One person's own usage per day (what /usage/ shows them)."""
    return usage_per_day(window, dimension=DIMENSIONS["people"], value=user_id)


def usage_by(dimension: Dimension, window: Window) -> dict[Any, Usage]:
    """Usage per person (or key) over the window, the largest token count first; none: not listed."""
    rows = (
        _messages(window, {f"{dimension.path}__isnull": False})
        .values(ident=F(dimension.path))
        .annotate(**_TOTALS)
        .order_by()
    )
    found = {row["ident"]: _usage(row) for row in rows}
    return dict(sorted(found.items(), key=lambda item: (-item[1].tokens, -item[1].messages, item[0])))


def usage_by_day(dimension: Dimension, window: Window) -> dict[tuple[Any, dt.date], Usage]:
    """Usage per (person or key, day): the rows of the staff CSV."""
    rows = (
        _messages(window, {f"{dimension.path}__isnull": False})
        .annotate(day=UtcDay("created_at"))
        .values("day", ident=F(dimension.path))
        .annotate(**_TOTALS)
        .order_by("ident", "day")
    )
    return {(row["ident"], row["day"]): _usage(row) for row in rows}


def total(per_day: dict[Any, Usage]) -> Usage:
    return sum(per_day.values(), Usage())
