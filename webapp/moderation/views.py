"""The moderation dashboard at /moderation/: the queue, actions on its items, rules, stats (docs/moderation.md).

Thin: check the input with a form, call one selector or one write, render
or redirect. Anonymous visitors are sent to log in; everybody below the
moderator role (webapp.accounts.access) gets 403 on every URL, whatever the method.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from inference.moderation.base import CATEGORIES, Action
from webapp.accounts.access import moderator_required
from webapp.moderation import services, stats
from webapp.moderation.bulk import items_apply
from webapp.moderation.feedback_stats import feedback_stats
from webapp.moderation.forms import (
    ITEM_ACTIONS,
    RULE_ACTIONS,
    SUSPEND_HOURS,
    ItemActionForm,
    PolicyForm,
    QueueFilterForm,
    RuleForm,
    StatsForm,
    form_errors,
)
from webapp.moderation.queue import UnknownItems, queue_page
from webapp.moderation.selectors import policy_mapping

DEFAULT_PAGE_SIZE = 25
PAST_TENSE = {
    "dismiss": "Dismissed",
    "confirm": "Confirmed",
    "hide": "Hid",
    "warn": "Warned",
    "suspend": "Suspended",
    "ban": "Banned",
}


@moderator_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    form = QueueFilterForm(request.GET)
    context: dict[str, object] = {
        "form": form,
        "item_actions": ITEM_ACTIONS,
        "suspend_hours": SUSPEND_HOURS,
        "rule_actions": RULE_ACTIONS,
        "categories": RuleForm.base_fields["category"].choices,
    }
    if not form.is_valid():
        context["errors"] = form_errors(form)
        return render(request, "moderation/queue.html", context, status=400)
    page = queue_page(
        form.filters(),
        before=form.cleaned_data["before"],
        size=form.cleaned_data["size"] or DEFAULT_PAGE_SIZE,
    )
    context["page"] = page
    if page.next_cursor is not None:
        older = request.GET.copy()
        older["before"] = page.next_cursor.encode()
        context["older_query"] = older.urlencode()
    context["first_page"] = not form.cleaned_data["before"]
    newest = request.GET.copy()
    newest.pop("before", None)
    context["newest_query"] = newest.urlencode()
    return render(request, "moderation/queue.html", context)


@moderator_required
@require_POST
def act(request: HttpRequest) -> HttpResponse:
    """One action on the items posted under `items`: an item's own button, or the checked boxes."""
    form = ItemActionForm(request.POST)
    if not form.is_valid():
        return _back(request, errors=form_errors(form))
    action = form.cleaned_data["action"]
    try:
        outcome = items_apply(
            moderator=request.user,
            keys=form.item_keys,
            action=action,
            suspend_for=form.suspend_for(),
            reason=form.cleaned_data["reason"],
        )
    except UnknownItems as error:
        return _back(
            request,
            errors=[f"No such item: {', '.join(k[:40] for k in error.keys[:5])}. Nothing was changed."],
        )
    except services.ModerationInputError as error:
        return _back(request, errors=[f"{error.message} Nothing was changed."])
    return _back(request, success=outcome.sentence(PAST_TENSE[action]))


@moderator_required
@require_POST
def rule_create(request: HttpRequest) -> HttpResponse:
    form = RuleForm(request.POST)
    if not form.is_valid():
        return _back(request, errors=form_errors(form))
    try:
        rule = services.rule_from_phrase(moderator=request.user, **form.cleaned_data)
    except services.ModerationInputError as error:
        return _back(request, errors=[error.message])
    return _back(request, success=f"Rule saved: {rule.action} “{rule.pattern}” ({rule.category}).")


@moderator_required
@require_http_methods(["GET", "POST"])
def policies(request: HttpRequest) -> HttpResponse:
    """Every category's policy; POST sets one (running workers follow from their next reply)."""
    if request.method == "POST":
        form = PolicyForm(request.POST)
        if not form.is_valid():
            return _back(request, errors=form_errors(form), to="moderation:policies")
        try:
            policy = services.policy_update(moderator=request.user, **form.cleaned_data)
        except services.ModerationInputError as error:
            return _back(request, errors=[error.message], to="moderation:policies")
        return _back(request, success=f"Policy saved: {policy}.", to="moderation:policies")
    mapping = policy_mapping()
    rows = [(category, *mapping.get(category, (None, None))) for category in CATEGORIES]
    return render(request, "moderation/policies.html", {"rows": rows, "actions": [a.value for a in Action]})


@moderator_required
@require_GET
def stats_page(request: HttpRequest) -> HttpResponse:
    return _window_page(request, "moderation/stats.html", stats.dashboard_stats)


@moderator_required
@require_GET
def feedback_page(request: HttpRequest) -> HttpResponse:
    """👍/👎 over a window: rates per day, model and reason; the replies rated 👎 and their moderation."""
    return _window_page(request, "moderation/feedback.html", feedback_stats)


def _window_page(request: HttpRequest, template: str, figures: Callable[..., object]) -> HttpResponse:
    """A page of figures over the last `days` days (StatsForm); a bad window is a 400 that says why."""
    form = StatsForm(request.GET)
    if not form.is_valid():
        return render(request, template, {"form": form, "errors": form_errors(form)}, status=400)
    return render(request, template, {"form": form, "stats": figures(days=form.window_days())})


def _back(
    request: HttpRequest, *, errors: list[str] = (), success: str = "", to: str = "moderation:queue"
) -> HttpResponse:
    """Back to the page the form was on (the queue with its filters and page), with what happened."""
    for error in errors:
        flash.error(request, error)
    if success:
        flash.success(request, success)
    target = request.POST.get("next", "")
    queue_url = reverse(to)
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return HttpResponseRedirect(target if safe and target.startswith(queue_url) else queue_url)
