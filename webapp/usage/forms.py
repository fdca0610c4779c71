"""The window of a usage page: `from` and `to`, UTC days as YYYY-MM-DD; by default the last 30 days."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone

from webapp.usage.selectors import Window

DEFAULT_DAYS = 30
# A year and a day: a leap year's whole year fits, one query still covers it quickly.
MAX_DAYS = 366
DATE_FORMAT = "%Y-%m-%d"


class WindowForm(forms.Form):
    # `from` is a Python keyword: the field is `first` and reads the `from` parameter (see __init__).
    first = forms.DateField(required=False, input_formats=[DATE_FORMAT], label="From")
    last = forms.DateField(required=False, input_formats=[DATE_FORMAT], label="To")

    def __init__(self, query: dict[str, str]) -> None:
        super().__init__({"first": query.get("from", ""), "last": query.get("to", "")})

    def clean(self) -> dict[str, object]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        today = timezone.now().astimezone(dt.UTC).date()
        last = cleaned.get("last") or today
        first = cleaned.get("first") or last - dt.timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            raise forms.ValidationError("The window ends before it starts: “from” must be on or before “to”.")
        if (last - first).days + 1 > MAX_DAYS:
            raise forms.ValidationError(f"At most {MAX_DAYS} days at once.")
        cleaned["window"] = Window(first, last)
        return cleaned

    @property
    def window(self) -> Window:
        return self.cleaned_data["window"]
