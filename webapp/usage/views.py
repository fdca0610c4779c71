"""Usage pages (docs/usage.md): a person's own at /usage/, and staff's per person and per API key.

Thin: read the window, call the selectors, render or write CSV. A person
sees only their own usage; every staff URL answers 403 to anybody else, then
404 to an unknown breakdown or id; a malformed or too long window is 400.
"""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from webapp.accounts.access import can_manage_users, limits_for_id
from webapp.chat import quotas
from webapp.moderation import charts
from webapp.moderation.forms import form_errors
from webapp.usage import selectors
from webapp.usage.forms import WindowForm
from webapp.usage.selectors import DIMENSIONS, Dimension, Usage, Window

# Rows of a breakdown page, the most tokens first; the CSV has them all.
PAGE_ROWS = 200
CSV_COLUMNS = ["messages", "replies", "tokens_in", "tokens_out"]
# A cell a spreadsheet would run as a formula (key names are free text): quoted with a leading '.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@login_required
@require_GET
def my_usage(request: HttpRequest) -> HttpResponse:
    return _per_day_page(request, dimension=DIMENSIONS["people"], ident=request.user.pk, name=None)


@login_required
@require_GET
def my_usage_csv(request: HttpRequest) -> HttpResponse:
    form = WindowForm(request.GET)
    if not form.is_valid():
        return _bad_window(request, form)
    return _per_day_csv(form.window, selectors.usage_of_person(form.window, request.user.pk), "usage")


@login_required
@require_GET
def breakdown(request: HttpRequest, dimension: str) -> HttpResponse:
    """Staff: usage per person (or key) over the window, with everybody's per day."""
    chosen = _staff_dimension(request, dimension)
    form = WindowForm(request.GET)
    if not form.is_valid():
        return _bad_window(
            request, form, template="usage/breakdown.html", dimension=chosen, current=chosen.slug
        )
    usage = selectors.usage_by(chosen, form.window)
    shown = dict(list(usage.items())[:PAGE_ROWS])
    names = chosen.names(shown)
    per_day = selectors.usage_per_day(form.window, dimension=chosen)
    context = {
        "form": form,
        "current": chosen.slug,
        "dimension": chosen,
        "dimensions": DIMENSIONS.values(),
        "window": form.window,
        "rows": [(ident, names.get(ident, f"#{ident} (deleted)"), row) for ident, row in shown.items()],
        "hidden_rows": len(usage) - len(shown),
        "total": selectors.total(per_day),
        **_charts(form.window, per_day),
        "query": request.GET.urlencode(),
    }
    return render(request, "usage/breakdown.html", context)


@login_required
@require_GET
def breakdown_csv(request: HttpRequest, dimension: str) -> HttpResponse:
    chosen = _staff_dimension(request, dimension)
    form = WindowForm(request.GET)
    if not form.is_valid():
        return _bad_window(request, form)
    usage = selectors.usage_by_day(chosen, form.window)
    names = chosen.names({ident for ident, _ in usage})
    rows = [
        [day.isoformat(), ident, names.get(ident, ""), *_numbers(row)] for (ident, day), row in usage.items()
    ]
    header = ["day", f"{chosen.title} id", chosen.title, *CSV_COLUMNS]
    return _csv(f"usage-{chosen.slug}-{_span(form.window)}.csv", header, rows)


@login_required
@require_GET
def breakdown_detail(request: HttpRequest, dimension: str, ident: int) -> HttpResponse:
    """Staff: one person's (or key's) usage per day."""
    chosen = _staff_subject(request, dimension, ident)
    return _per_day_page(request, dimension=chosen, ident=ident, name=chosen.names([ident])[ident])


@login_required
@require_GET
def breakdown_detail_csv(request: HttpRequest, dimension: str, ident: int) -> HttpResponse:
    chosen = _staff_subject(request, dimension, ident)
    form = WindowForm(request.GET)
    if not form.is_valid():
        return _bad_window(request, form)
    per_day = selectors.usage_per_day(form.window, dimension=chosen, value=ident)
    return _per_day_csv(form.window, per_day, f"usage-{chosen.slug}-{ident}")


def _per_day_page(
    request: HttpRequest, *, dimension: Dimension, ident: Any, name: str | None
) -> HttpResponse:
    """Usage per day of one person or key: a person's own (no name), or the one staff picked."""
    subject = {"dimension": dimension, "ident": ident, "name": name} if name is not None else None
    current = dimension.slug if subject else "mine"
    form = WindowForm(request.GET)
    if not form.is_valid():
        return _bad_window(request, form, template="usage/per_day.html", subject=subject, current=current)
    per_day = selectors.usage_per_day(form.window, dimension=dimension, value=ident)
    # A person's limits; a key has none of its own (its owner's apply).
    limits = _limits(ident) if dimension.slug == "people" else None
    context = {
        "form": form,
        "current": current,
        "subject": subject,
        "window": form.window,
        "days": [(day, per_day.get(day, Usage())) for day in reversed(form.window.days)],
        "total": selectors.total(per_day),
        "limits": limits,
        "quota": limits["quota_tokens_per_day"] if limits else settings.QUOTA_TOKENS_PER_DAY,
        **_charts(form.window, per_day),
        "query": request.GET.urlencode(),
    }
    return render(request, "usage/per_day.html", context)


def _staff_dimension(request: HttpRequest, slug: str) -> Dimension:
    """The one access check of the staff pages: administrators only (403), then a known breakdown (404)."""
    if not can_manage_users(request.user):
        raise PermissionDenied("Usage per person and per key is for administrators.")
    if slug not in DIMENSIONS:
        raise Http404("No such breakdown.")
    return DIMENSIONS[slug]


def _staff_subject(request: HttpRequest, slug: str, ident: int) -> Dimension:
    """A staff page of one person or key: the access check, then 404 for an id that names nobody."""
    chosen = _staff_dimension(request, slug)
    if not chosen.exists(ident):
        raise Http404(f"No such {chosen.title}.")
    return chosen


def _limits(user_id: Any) -> dict[str, Any]:
    """The person's limits (their groups', else the settings': webapp/accounts/access.py), and today's count."""
    try:
        today = quotas.tokens_used_today(user_id=user_id)
    except Exception:  # Redis down: the page still shows the stored usage
        today = None
    limits = limits_for_id(user_id)
    quota = limits.tokens_per_day
    return {
        "quota_tokens_per_day": quota,
        "tokens_today": today,
        "quota_percent": round(100 * today / quota, 1) if quota and today is not None else None,
        "messages_per_minute": limits.messages_per_minute,
        "live_replies": settings.MAX_LIVE_REPLIES_PER_USER,
    }


def _charts(window: Window, per_day: dict[dt.date, Usage]) -> dict[str, charts.StackedBars]:
    tokens = {day: {"tokens in": row.tokens_in, "tokens out": row.tokens_out} for day, row in per_day.items()}
    messages = {day: {"messages": row.messages, "replies": row.replies} for day, row in per_day.items()}
    return {
        "tokens_chart": charts.stacked_bars(window.days, ["tokens in", "tokens out"], tokens),
        "messages_chart": charts.stacked_bars(window.days, ["messages", "replies"], messages, height=180),
    }


def _bad_window(
    request: HttpRequest, form: WindowForm, template: str | None = None, **context: Any
) -> HttpResponse:
    """400 with what is wrong: on the page, or as plain text for a CSV download."""
    errors = form_errors(form)
    if template is None:
        return HttpResponse("\n".join(errors) + "\n", status=400, content_type="text/plain; charset=utf-8")
    return render(request, template, {"form": form, "errors": errors, **context}, status=400)


def _per_day_csv(window: Window, per_day: dict[dt.date, Usage], name: str) -> HttpResponse:
    """One row per day of the window, days without usage included (a spreadsheet's axis)."""
    rows = [[day.isoformat(), *_numbers(per_day.get(day, Usage()))] for day in window.days]
    return _csv(f"{name}-{_span(window)}.csv", ["day", *CSV_COLUMNS], rows)


def _numbers(row: Usage) -> list[int]:
    return [getattr(row, name) for name in CSV_COLUMNS]


def _span(window: Window) -> str:
    return f"{window.first_day:%Y%m%d}-{window.last_day:%Y%m%d}"


def _csv(filename: str, header: list[str], rows: list[list[Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows([[_cell(value) for value in row] for row in rows])
    return response


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
