"""The dashboard's inputs, checked: queue filters, actions on items, rules, the stats window."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib.auth import get_user_model

from inference.moderation.base import CATEGORIES, Action, Stage
from webapp.moderation.models import ReviewStatus, Sanction
from webapp.moderation.queue import KINDS, Cursor, CursorError, QueueFilters

ANY = [("", "any")]
PAGE_SIZES = (1, 100)
MAX_BULK_ITEMS = 200
MAX_REASON_CHARS = 1000
# Suspensions the dashboard offers, in hours (a day, a week, a month, ...).
SUSPEND_HOURS = [(1, "1 hour"), (24, "1 day"), (24 * 7, "1 week"), (24 * 30, "30 days"), (24 * 365, "1 year")]
ITEM_ACTIONS = {
    "dismiss": "Dismiss",
    "confirm": "Confirm",
    "hide": "Hide reply",
    "warn": "Warn",
    "suspend": "Suspend",
    "ban": "Ban",
}
RULE_ACTIONS = [(a.value, a.value) for a in Action if a != Action.ALLOW]
MAX_STATS_DAYS = 365


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[*((s.value, s.label) for s in ReviewStatus), ("any", "any")], required=False
    )
    kind = forms.ChoiceField(choices=ANY + [(k, f"{k}s") for k in KINDS], required=False)
    category = forms.ChoiceField(choices=ANY + [(c, c) for c in CATEGORIES], required=False)
    hook = forms.CharField(max_length=200, required=False)
    stage = forms.ChoiceField(choices=ANY + [(s.value, s.value) for s in Stage], required=False)
    action = forms.ChoiceField(choices=ANY + [(a, a) for a in ("flag", "redact", "block")], required=False)
    user = forms.CharField(max_length=150, required=False, label="User name")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    before = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)
    size = forms.IntegerField(
        min_value=PAGE_SIZES[0], max_value=PAGE_SIZES[1], required=False, widget=forms.HiddenInput
    )

    def clean_user(self):
        name = self.cleaned_data["user"].strip()
        if not name:
            return None
        user = get_user_model().objects.filter(username__iexact=name).first()
        if user is None:
            raise forms.ValidationError(f"No user is called “{name}”.")
        return user

    def clean_before(self) -> Cursor | None:
        text = self.cleaned_data["before"]
        if not text:
            return None
        try:
            return Cursor.decode(text)
        except CursorError:
            raise forms.ValidationError(
                "That page link is broken; start again from the first page."
            ) from None

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

    def filters(self) -> QueueFilters:
        data = self.cleaned_data
        status = data["status"] or ReviewStatus.OPEN.value
        return QueueFilters(
            status="" if status == "any" else status,
            kind=data["kind"],
            category=data["category"],
            hook=data["hook"].strip(),
            stage=data["stage"],
            action=data["action"],
            user=data["user"],
            since=data["since"],
            until=data["until"],
        )


class ItemActionForm(forms.Form):
    """One action on one or many queue items (the item's buttons, or the checked boxes)."""

    action = forms.ChoiceField(choices=list(ITEM_ACTIONS.items()))
    duration = forms.TypedChoiceField(
        choices=[("", "—")] + SUSPEND_HOURS, coerce=int, empty_value=None, required=False
    )
    reason = forms.CharField(max_length=MAX_REASON_CHARS, required=False, strip=True)

    def __init__(self, data, *args, **kwargs) -> None:
        super().__init__(data, *args, **kwargs)
        # Many values under one name: the checked boxes, or the one item's hidden field.
        self.item_keys = [key.strip() for key in data.getlist("items") if key.strip()]

    def clean(self):
        data = super().clean()
        if not self.item_keys:
            raise forms.ValidationError("Select at least one item.")
        if len(self.item_keys) > MAX_BULK_ITEMS:
            raise forms.ValidationError(f"Select at most {MAX_BULK_ITEMS} items at once.")
        if data.get("action") == "suspend" and not data.get("duration"):
            self.add_error("duration", "Choose how long to suspend for.")
        return data

    def suspend_for(self) -> timedelta | None:
        hours = self.cleaned_data.get("duration")
        return timedelta(hours=hours) if self.cleaned_data["action"] == "suspend" and hours else None

    @property
    def sanction_kind(self) -> str | None:
        action = self.cleaned_data["action"]
        return action if action in Sanction.Kind.values else None


class RuleForm(forms.Form):
    """A phrase rule made from text seen in the queue."""

    phrase = forms.CharField(max_length=200, strip=True, error_messages={"required": "Enter the phrase."})
    category = forms.ChoiceField(choices=[(c, c) for c in CATEGORIES])
    action = forms.ChoiceField(choices=RULE_ACTIONS)


class PolicyForm(forms.Form):
    """A category's policy: what a verdict at or over the threshold leads to."""

    category = forms.ChoiceField(choices=[(c, c) for c in CATEGORIES])
    action = forms.ChoiceField(choices=[(a.value, a.value) for a in Action])
    threshold = forms.FloatField(min_value=0.0, max_value=1.0)


class StatsForm(forms.Form):
    days = forms.IntegerField(
        min_value=1,
        max_value=MAX_STATS_DAYS,
        required=False,
        widget=forms.NumberInput(attrs={"placeholder": "30"}),
    )

    def window_days(self) -> int:
        return self.cleaned_data.get("days") or 30


def form_errors(form: forms.Form) -> list[str]:
    """Every error of a form as one sentence each, with the field it is about."""
    messages = []
    for name, errors in form.errors.items():
        label = form.fields[name].label or name.replace("_", " ").capitalize() if name in form.fields else ""
        for error in errors:
            messages.append(f"{label}: {error}" if label and name != "__all__" else error)
    return messages
