"""Figures of the feedback page: 👍/👎 over a window of days, per day, per model and per reason, and the
replies rated 👎 beside their moderation state (docs/feedback.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from webapp.chat.models import Feedback

WORST_SHOWN = 25


@dataclass(frozen=True)
class Rates:
    """Counts of 👍 and 👎, and the share of 👍 (None without any)."""

    up: int
    down: int

    @property
    def total(self) -> int:
        return self.up + self.down

    @property
    def up_share(self) -> float | None:
        return self.up / self.total if self.total else None


@dataclass
class FeedbackStats:
    days: int
    first_day: date
    last_day: date
    overall: Rates
    per_day: list[tuple[str, Rates]]  # the day as YYYY-MM-DD
    per_model: list[tuple[str, Rates]]
    per_reason: list[tuple[str, str, Rates]]
    worst: list[Feedback]


def feedback_stats(*, days: int = 30) -> FeedbackStats:
    last_day = timezone.now().astimezone(UTC).date()
    first_day = last_day - timedelta(days=days - 1)
    ratings = Feedback.objects.filter(updated_at__gte=datetime.combine(first_day, time.min, tzinfo=UTC))
    return FeedbackStats(
        days=days,
        first_day=first_day,
        last_day=last_day,
        overall=_rates(ratings.aggregate(**_COUNTS)),
        per_day=[
            (row["day"].isoformat(), _rates(row))
            for row in ratings.annotate(day=TruncDate("updated_at"))
            .values("day")
            .annotate(**_COUNTS)
            .order_by("day")
        ],
        per_model=[
            (row["message__model_name"] or "(unknown)", _rates(row))
            for row in ratings.values("message__model_name")
            .annotate(**_COUNTS)
            .order_by("-up", "message__model_name")
        ],
        per_reason=_per_reason(ratings),
        worst=list(
            ratings.filter(rating=Feedback.Rating.DOWN)
            .select_related("message__conversation__owner", "message__moderation_hidden")
            .annotate(
                moderation_events=Count("message__moderation_events", distinct=True),
                reports=Count("message__reports", distinct=True),
            )
            .order_by("-updated_at", "-id")[:WORST_SHOWN]
        ),
    )


_COUNTS = {
    "up": Count("id", filter=Q(rating=Feedback.Rating.UP)),
    "down": Count("id", filter=Q(rating=Feedback.Rating.DOWN)),
}


def _rates(row: dict[str, int]) -> Rates:
    return Rates(up=row["up"] or 0, down=row["down"] or 0)


def _per_reason(ratings: QuerySet[Feedback]) -> list[tuple[str, str, Rates]]:
    """How often each reason was given with each rating (reasons are a JSON list: counted as read)."""
    counts: dict[str, dict[str, int]] = {}
    for rating, reasons in ratings.exclude(reasons=[]).values_list("rating", "reasons").iterator():
        for reason in reasons:
            counts.setdefault(reason, {"up": 0, "down": 0})[rating] += 1
    labels = dict(Feedback.Reason.choices)
    return [
        (reason, str(labels.get(reason, reason)), Rates(**counts[reason]))
        for reason in Feedback.Reason.values
        if reason in counts
    ]
