"""Figures for the stats page, each one aggregate query over a window of days (never a loop over rows).

Latency percentiles are nearest-rank: per hook, one count and one indexed
pick of the k-th smallest latency, so they read the same on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Max, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from inference.moderation.base import CATEGORIES
from webapp.moderation import charts
from webapp.moderation.models import ModerationEvent, Report

TOP_USERS = 10
NO_CATEGORY = "none"


@dataclass(frozen=True)
class HookLatency:
    hook: str
    count: int
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass
class DashboardStats:
    days: int
    first_day: date
    last_day: date
    total_events: int
    total_reports: int
    per_day: dict[date, dict[str, int]]
    categories: list[str]
    actions: list[tuple[str, int]]
    top_users: list[tuple[str, int]]
    latency: list[HookLatency]
    per_day_chart: charts.StackedBars
    action_chart: charts.HorizontalBars
    users_chart: charts.HorizontalBars
    latency_chart: charts.HorizontalBars

    @property
    def per_day_rows(self) -> list[tuple[date, list[int]]]:
        """Days that had events, with a count per category in `categories` order."""
        return [
            (day, [self.per_day[day].get(category, 0) for category in self.categories])
            for day in sorted(self.per_day)
        ]


def dashboard_stats(*, days: int = 30) -> DashboardStats:
    last_day = timezone.now().astimezone(UTC).date()
    first_day = last_day - timedelta(days=days - 1)
    since = datetime.combine(first_day, time.min, tzinfo=UTC)
    events = ModerationEvent.objects.filter(created_at__gte=since)

    per_day, categories = _per_day_by_category(events)
    actions = [
        (row["action"], row["n"])
        for row in events.values("action").annotate(n=Count("id")).order_by("-n", "action")
    ]
    top_users = [
        (row["user__username"], row["n"])
        for row in events.values("user__username")
        .annotate(n=Count("id"))
        .order_by("-n", "user__username")[:TOP_USERS]
    ]
    latency = hook_latencies(events)
    day_list = [first_day + timedelta(days=i) for i in range(days)]
    return DashboardStats(
        days=days,
        first_day=first_day,
        last_day=last_day,
        total_events=sum(n for _, n in actions),
        total_reports=Report.objects.filter(created_at__gte=since).count(),
        per_day=per_day,
        categories=categories,
        actions=actions,
        top_users=top_users,
        latency=latency,
        per_day_chart=charts.stacked_bars(day_list, categories, per_day),
        action_chart=charts.horizontal_bars(
            [(action, [n]) for action, n in actions], series=["events"], **charts.HALF_WIDTH
        ),
        users_chart=charts.horizontal_bars(
            [(name, [n]) for name, n in top_users], series=["events"], **charts.HALF_WIDTH
        ),
        latency_chart=charts.horizontal_bars(
            [(row.hook, [row.p50_ms, row.p95_ms]) for row in latency], series=["p50", "p95"], unit=" ms"
        ),
    )


def _per_day_by_category(events: QuerySet[ModerationEvent]) -> tuple[dict[date, dict[str, int]], list[str]]:
    """Events per day per (first) category; the categories that occur, in the app's order."""
    rows = (
        events.annotate(day=TruncDate("created_at"))
        .values("day", "category")
        .annotate(n=Count("id"))
        .order_by("day", "category")
    )
    per_day: dict[date, dict[str, int]] = {}
    seen: set[str] = set()
    for row in rows:  # one row per (day, category): at most days x 10
        category = row["category"] or NO_CATEGORY
        per_day.setdefault(row["day"], {})[category] = row["n"]
        seen.add(category)
    return per_day, [c for c in (*CATEGORIES, NO_CATEGORY) if c in seen]


def hook_latencies(events: QuerySet[ModerationEvent]) -> list[HookLatency]:
    """p50, p95 and max latency per hook (nearest rank), busiest hook first."""
    result = []
    per_hook = events.values("hook").annotate(n=Count("id"), top=Max("latency_ms")).order_by("-n", "hook")
    for row in per_hook:  # one row per hook: a handful
        ordered = events.filter(hook=row["hook"]).order_by("latency_ms").values_list("latency_ms", flat=True)
        result.append(
            HookLatency(
                hook=row["hook"],
                count=row["n"],
                p50_ms=ordered[_rank(row["n"], 0.50)],
                p95_ms=ordered[_rank(row["n"], 0.95)],
                max_ms=row["top"],
            )
        )
    return result


def _rank(count: int, quantile: float) -> int:
    """The 0-based index of the nearest-rank `quantile` among `count` sorted values."""
    return max(0, math.ceil(quantile * count) - 1)
