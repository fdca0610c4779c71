"""The staff feedback page: rates per day, model and reason, and the replies rated 👎 with their moderation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.webapp.moderation.dashboard_support import make_event, make_exchange, make_person, make_report
from webapp.chat.models import Feedback
from webapp.moderation.models import HiddenReply

pytestmark = pytest.mark.django_db


def rate(reply, rating: str, *, reasons=(), comment: str = "", days_ago: int = 0) -> Feedback:
    feedback = Feedback.objects.create(
        message=reply, user=reply.conversation.owner, rating=rating, reasons=list(reasons), comment=comment
    )
    Feedback.objects.filter(pk=feedback.pk).update(updated_at=timezone.now() - timedelta(days=days_ago))
    return feedback


def cells(page: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table[^>]*id="{table}".*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_rates_per_model_and_reason_and_the_worst_replies_with_their_moderation(staff: Client, bob) -> None:
    good = make_exchange(bob, "q", "a fine answer")
    bad = make_exchange(bob, "q", "a wrong answer")
    old = make_exchange(bob, "q", "an old answer")
    for reply, model in ((good, "mistral-7b"), (bad, "mistral-7b"), (old, "tiny")):
        reply.model_name = model
        reply.save()
    rate(good, "up", reasons=["helpful"])
    rate(bad, "down", reasons=["incorrect", "unsafe"], comment="it <b>lies</b>")
    rate(old, "down", days_ago=40)  # out of the 30-day window
    make_event(bad)
    make_report(bad, bob)
    HiddenReply.objects.create(message=bad, hidden_by=make_person("other-mod", staff=True))

    page = staff.get(reverse("moderation:feedback")).content.decode()
    assert re.search(r'id="total-up">1<.*id="total-down">1<.*id="up-share">50<', page, re.S)
    assert cells(page, "feedback-per-model") == [["mistral-7b", "1", "1", "50"]]
    assert cells(page, "feedback-per-reason") == [
        ["Helpful", "1", "0"],
        ["Not correct", "0", "1"],
        ["Harmful or unsafe", "0", "1"],
    ]
    [worst] = cells(page, "feedback-worst")
    assert worst[2] == "a wrong answer" and worst[3] == "mistral-7b"
    assert "incorrect, unsafe" in worst[4] and "&lt;b&gt;lies" in page and "<b>lies" not in page
    assert worst[5] == "hidden 1 event, 1 report"
    wider = staff.get(reverse("moderation:feedback"), {"days": 60}).content.decode()
    assert len(cells(wider, "feedback-worst")) == 2


def test_only_staff_and_a_bad_window_is_a_400(staff: Client, bob) -> None:
    person = Client()
    person.force_login(bob)
    assert person.get(reverse("moderation:feedback")).status_code == 403
    assert Client().get(reverse("moderation:feedback")).status_code == 302
    assert staff.get(reverse("moderation:feedback"), {"days": "0"}).status_code == 400
    assert "No feedback in this window." in staff.get(reverse("moderation:feedback")).content.decode()
