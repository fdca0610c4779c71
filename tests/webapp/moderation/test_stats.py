"""The stats page: figures from aggregate queries over a window, drawn as inline SVG."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inference.moderation.base import CATEGORIES
from tests.webapp.moderation.dashboard_support import (
    fast_passwords,  # noqa: F401
    make_event,
    make_exchange,
    make_person,
    make_report,
)
from webapp.moderation import charts
from webapp.moderation.stats import dashboard_stats

pytestmark = pytest.mark.django_db


def days_ago(n: int, hours: int = 0):
    return timezone.now() - timedelta(days=n, hours=hours)


def test_events_per_day_by_category_action_mix_and_top_users(bob) -> None:
    carol = make_person("carol")
    bobs, carols = make_exchange(bob), make_exchange(carol)
    for _ in range(3):
        make_event(bobs, at=days_ago(0), categories=("pii", "law"), action="redact")
    make_event(bobs, at=days_ago(2), categories=("violence_and_threats",), action="block")
    make_event(carols, at=days_ago(2), categories=("violence_and_threats",))
    make_event(carols, at=days_ago(2), categories=())
    make_event(carols, at=days_ago(40))  # outside the default 30 days
    make_report(bobs, carol, at=days_ago(1))

    stats = dashboard_stats()
    today, two_ago = days_ago(0).date(), days_ago(2).date()
    assert stats.per_day == {today: {"pii": 3}, two_ago: {"violence_and_threats": 2, "none": 1}}
    assert stats.categories == ["violence_and_threats", "pii", "none"]
    assert stats.actions == [("redact", 3), ("flag", 2), ("block", 1)]
    assert stats.top_users == [("bob", 4), ("carol", 2)]
    assert (stats.total_events, stats.total_reports) == (6, 1)
    # One bar per (day, category) with events; stacked, they reach as high as the day's total.
    bars = stats.per_day_chart.bars
    assert sorted(bar.title for bar in bars) == sorted(
        [f"{today:%b %d}: 3 pii", f"{two_ago:%b %d}: 2 violence_and_threats", f"{two_ago:%b %d}: 1 none"]
    )
    assert (
        len(stats.per_day_chart.x_labels) == 3 and stats.per_day_chart.x_labels[-1].text == f"{today:%b %d}"
    )
    assert stats.per_day_rows[0] == (two_ago, [2, 0, 1])

    assert dashboard_stats(days=60).total_events == 7


def test_hook_latency_percentiles_are_nearest_rank() -> None:
    bob = make_person("bob2")
    reply = make_exchange(bob)
    for latency in range(100, 0, -1):  # 1..100 ms, stored in no particular order
        make_event(reply, hook="classifier", latency_ms=float(latency))
    make_event(reply, hook="rules", latency_ms=7.5)
    [classifier, rules] = dashboard_stats().latency
    assert (classifier.hook, classifier.count, classifier.p50_ms, classifier.p95_ms, classifier.max_ms) == (
        "classifier",
        100,
        50.0,
        95.0,
        100.0,
    )
    assert (rules.count, rules.p50_ms, rules.p95_ms, rules.max_ms) == (1, 7.5, 7.5, 7.5)


def test_query_count_does_not_grow_with_the_number_of_events(bob) -> None:
    reply = make_exchange(bob)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            dashboard_stats()
        return len(captured)

    for hook in ("rules", "pii"):
        make_event(reply, hook=hook)
    few = queries()
    for index in range(150):
        make_event(reply, hook=("rules", "pii")[index % 2], at=days_ago(index % 30), latency_ms=index)
    assert queries() == few


def test_the_page_draws_inline_svg_with_no_script_or_style_of_its_own(staff, bob) -> None:
    reply = make_exchange(bob)
    make_event(reply, categories=("hate_and_discrimination",), hook="rules", latency_ms=3.0)
    make_event(reply, categories=("pii",), hook="pii", latency_ms=12.0, action="redact")
    response = staff.get(reverse("moderation:stats"))
    assert response.status_code == 200
    page = response.content.decode()
    main = page[page.index("<main") : page.index("</main>")]
    assert main.count('<svg class="chart"') == 4
    assert 'class="chart-hate-and-discrimination"' in main and 'class="chart-pii"' in main
    assert "<script" not in main and "style=" not in main
    assert not re.search(r'(src|href)="(https?:)?//', page), "nothing comes from another origin"
    assert re.search(r'<th scope="row">pii</th><td>1</td><td>12.00</td><td>12.00</td>', main)


def test_profanity_is_a_series_of_its_own_with_its_colour(staff, bob) -> None:
    reply = make_exchange(bob)
    make_event(
        reply, at=days_ago(0), hook="offensive", categories=("hate_and_discrimination",)
    )  # stored before
    for _ in range(2):
        make_event(reply, at=days_ago(0), hook="offensive", categories=("profanity",))
    stats = dashboard_stats()
    assert stats.categories == ["hate_and_discrimination", "profanity"]
    assert stats.per_day == {days_ago(0).date(): {"hate_and_discrimination": 1, "profanity": 2}}
    assert ("chart-profanity", "profanity") in stats.per_day_chart.legend
    [bar] = [bar for bar in stats.per_day_chart.bars if bar.css == "chart-profanity"]
    assert bar.title == f"{days_ago(0):%b %d}: 2 profanity"
    main = staff.get(reverse("moderation:stats")).content.decode()
    assert 'class="chart-profanity"' in main and '<th scope="col">profanity</th>' in main


def test_every_category_has_a_colour() -> None:
    css = (settings.BASE_DIR / "static" / "css" / "moderation.css").read_text()
    for category in (*CATEGORIES, "none"):
        assert re.search(
            rf"^\.chart-{category.replace('_', '-')} \{{ fill: #[0-9a-f]{{6}}; \}}", css, re.M
        ), category


def test_an_empty_window_says_so(staff) -> None:
    page = staff.get(reverse("moderation:stats"), {"days": "7"}).content.decode()
    assert "No events in this window" in page
    assert '<strong id="total-events">0</strong>' in page


@pytest.mark.parametrize(
    ("days", "says"),
    [("0", "greater than or equal to 1"), ("366", "less than or equal to 365"), ("a week", "whole number")],
)
def test_a_bad_window_is_refused_clearly(staff, days, says) -> None:
    response = staff.get(reverse("moderation:stats"), {"days": days})
    assert response.status_code == 400
    assert says in response.content.decode()


def test_axis_maximum_is_a_round_number() -> None:
    assert [charts.nice_ceiling(v) for v in (0, 1, 3, 7, 11, 26, 180, 999)] == [
        1,
        1,
        5,
        10,
        20,
        50,
        200,
        1000,
    ]
