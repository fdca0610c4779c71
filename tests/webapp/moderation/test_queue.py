"""The queue page: what it lists and in which order, filters, keyset pages, the conversation around items."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.webapp.moderation.dashboard_support import (
    fast_passwords,  # noqa: F401
    make_event,
    make_exchange,
    make_person,
    make_report,
)
from webapp.api.models import ApiConversation
from webapp.api.services import api_key_create, api_key_revoke
from webapp.chat.models import Message
from webapp.moderation import services
from webapp.moderation.queue import Cursor, CursorError

pytestmark = pytest.mark.django_db


T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def listed(client: Client, **params) -> list[str]:
    response = client.get(reverse("moderation:queue"), params)
    assert response.status_code == 200, response.content.decode()[:2000]
    return re.findall(r'data-item="((?:event|report):\d+)"', response.content.decode())


def refused(client: Client, **params) -> str:
    response = client.get(reverse("moderation:queue"), params)
    assert response.status_code == 400
    errors = re.search(
        r'<ul class="errors" id="filter-errors" role="alert">(.*?)</ul>', response.content.decode(), re.S
    )
    assert errors, "the page names what is wrong"
    assert "data-item=" not in response.content.decode()
    return errors.group(1)


def test_events_and_reports_newest_first_open_only(staff, reply, bob) -> None:
    older = make_event(reply, at=T0, action="block")
    report = make_report(reply, bob, at=T0 + timedelta(minutes=1))
    newer = make_event(reply, at=T0 + timedelta(minutes=2), action="redact", categories=("pii",))
    make_event(
        reply, at=T0 + timedelta(minutes=3), action="allow"
    )  # a failed hook call, allowed: not an item
    make_event(reply, at=T0 + timedelta(minutes=4), status="dismissed")
    assert listed(staff) == [f"event:{newer.pk}", f"report:{report.pk}", f"event:{older.pk}"]
    assert len(listed(staff, status="any")) == 4
    assert len(listed(staff, status="dismissed")) == 1


def test_keyset_pages_walk_every_item_once_in_order_ties_included(staff, reply, bob) -> None:
    same = T0 + timedelta(minutes=5)
    keys = []
    for minute in range(7):
        keys.append(f"event:{make_event(reply, at=T0 + timedelta(minutes=minute)).pk}")
    keys += [f"event:{make_event(reply, at=same).pk}" for _ in range(3)]  # three at one instant
    keys.append(f"report:{make_report(reply, bob, at=same).pk}")
    everything = listed(staff, size=100)
    assert sorted(everything) == sorted(keys)
    walked, params = [], {"size": 3}
    while True:
        response = staff.get(reverse("moderation:queue"), params)
        page = re.findall(r'data-item="((?:event|report):\d+)"', response.content.decode())
        walked += page
        older = re.search(r'href="\?([^"]+)" rel="next"', response.content.decode())
        if not older:
            break
        params = dict(pair.split("=", 1) for pair in older.group(1).replace("&amp;", "&").split("&"))
        assert len(page) == 3
    assert walked == everything


def test_query_count_does_not_grow_with_page_size_data_or_depth(staff, moderator, bob) -> None:
    def queries(**params) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert len(listed(staff, **params)) == params["size"]
        return len(captured)

    carol = make_person("carol")
    for index in range(4):
        make_event(make_exchange(bob), at=T0 + timedelta(seconds=index))
    small = queries(size=2)
    for index in range(60):
        reply = make_exchange(carol if index % 2 else bob)
        make_event(reply, at=T0 + timedelta(minutes=index))
        make_report(reply, bob, at=T0 + timedelta(minutes=index, seconds=30))
    assert queries(size=50) == small
    deep = Cursor(T0 + timedelta(minutes=20), "event", 10**6).encode()
    assert queries(size=20, before=deep) == small
    assert queries(size=20, user="carol") == small + 1  # + looking carol up


def test_items_from_the_api_name_the_key_that_made_them_in_the_same_queries(staff, reply, bob) -> None:
    key, _ = api_key_create(owner=bob, name="nightly-bot")
    api_reply = make_exchange(bob)
    make_event(reply, at=T0)  # from the chat page: no key
    make_event(api_reply, at=T0 + timedelta(minutes=1))
    make_report(api_reply, bob, at=T0 + timedelta(minutes=2))

    def page() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as captured:
            response = staff.get(reverse("moderation:queue"))
        assert response.status_code == 200
        return response.content.decode(), len(captured)

    html, before = page()
    assert "via API key" not in html
    ApiConversation.objects.create(conversation=api_reply.conversation, api_key=key)
    html, after = page()
    assert html.count(f"via API key “nightly-bot” ({key.prefix}…)</span>") == 2  # the event and the report
    assert after == before  # joined into the queue's queries, not one more per item
    api_key_revoke(api_key=key)
    assert "nightly-bot” (" + key.prefix + "…), revoked" in page()[0]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "pii"}, {"pii"}),
        ({"hook": "pii"}, {"pii"}),
        ({"stage": "input"}, {"input"}),
        ({"action": "block"}, {"block"}),
        ({"kind": "report"}, {"report"}),
        ({"kind": "event"}, {"plain", "pii", "input", "block", "carol", "late", "early"}),
        ({"user": "CAROL"}, {"carol"}),
        ({"since": "2026-11-02"}, {"late"}),
        ({"until": "2026-10-31"}, {"early"}),
        (
            {"since": "2026-11-01", "until": "2026-11-01"},
            {"plain", "pii", "input", "block", "report", "carol"},
        ),
    ],
)
def test_filters(staff, bob, params, expected) -> None:
    carol = make_person("carol")
    reply = make_exchange(bob)
    made = {
        "plain": make_event(reply, at=T0),
        "pii": make_event(reply, at=T0, hook="pii", categories=("pii", "law")),
        "input": make_event(reply, at=T0, stage="input"),
        "block": make_event(reply, at=T0, action="block"),
        "report": make_report(reply, bob, at=T0),
        "carol": make_event(make_exchange(carol), at=T0 + timedelta(hours=1)),
        "late": make_event(reply, at=T0 + timedelta(days=1)),
        "early": make_event(reply, at=T0 - timedelta(days=1)),
    }
    names = {f"{'report' if name == 'report' else 'event'}:{row.pk}": name for name, row in made.items()}
    assert {names[key] for key in listed(staff, **params)} == expected


def test_the_category_filter_offers_profanity(staff) -> None:
    page = staff.get(reverse("moderation:queue")).content.decode()
    select = re.search(r'<select name="category".*?</select>', page, re.S).group()
    assert '<option value="profanity">profanity</option>' in select
    assert '<option value="hate_and_discrimination">hate_and_discrimination</option>' in select
    chosen = staff.get(reverse("moderation:queue"), {"category": "profanity"}).content.decode()
    assert '<option value="profanity" selected>profanity</option>' in chosen


def test_classifier_events_from_before_and_after_profanity_are_each_under_their_own(staff, reply) -> None:
    # Stored events keep their categories: the classifier's older insults stay under hate.
    before = make_event(reply, at=T0, hook="offensive", categories=("hate_and_discrimination",))
    rule = make_event(reply, at=T0 + timedelta(minutes=1), categories=("hate_and_discrimination",))
    after = make_event(reply, at=T0 + timedelta(minutes=2), hook="offensive", categories=("profanity",))
    assert listed(staff, category="profanity") == [f"event:{after.pk}"]
    assert listed(staff, category="hate_and_discrimination") == [f"event:{rule.pk}", f"event:{before.pk}"]
    assert listed(staff, hook="offensive") == [f"event:{after.pk}", f"event:{before.pk}"]
    page = staff.get(reverse("moderation:queue"), {"category": "profanity"}).content.decode()
    assert '<span class="categories">profanity</span>' in page


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"category": "nonsense"}, "Select a valid choice"),
        ({"stage": "<script>"}, "Select a valid choice"),
        ({"status": "closed"}, "Select a valid choice"),
        ({"kind": "rule"}, "Select a valid choice"),
        ({"since": "yesterday"}, "Enter a valid date"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "The end date is before the start date"),
        ({"user": "nobody-here"}, "No user is called “nobody-here”"),
        ({"before": "1.e.2.3"}, "That page link is broken"),
        ({"before": "99999999999999999999.e.1"}, "That page link is broken"),
        ({"size": "0"}, "greater than or equal to 1"),
        ({"size": "100000"}, "less than or equal to 100"),
        ({"size": "ten"}, "Enter a whole number"),
        ({"hook": "h" * 201}, "at most 200 characters"),
    ],
)
def test_bad_filter_values_get_a_clear_message(staff, params, says) -> None:
    assert says in refused(staff, **params).replace("&quot;", '"')


def test_cursor_round_trip_and_hostile_cursors() -> None:
    cursor = Cursor(datetime(2026, 11, 23, 5, 1, 2, 345678, tzinfo=UTC), "report", 42)
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ["", "1.x.2", "1.e", "a.e.1", "-1.e.1", "1.e.-1", "1.e.99999999999999999999", "1. e.1"]:
        with pytest.raises(CursorError):
            Cursor.decode(bad)


def test_each_item_shows_the_conversation_around_it_and_the_original_text(staff, bob) -> None:
    reply = make_exchange(bob, "question 0", "answer 0")
    conversation = reply.conversation
    for turn in range(1, 5):
        Message.objects.create(conversation=conversation, role="user", content=f"question {turn}")
        last = Message.objects.create(conversation=conversation, role="assistant", content=f"answer {turn}")
        if turn == 2:
            target = last
    target.content = "answer 2 with [email redacted]"
    target.save()
    make_event(target, action="redact", categories=("pii",), excerpt="answer 2 with bob@example.com")
    page = staff.get(reverse("moderation:queue")).content.decode()
    shown = re.findall(r'<div class="text">(.*?)</div>', page, re.S)
    assert shown == ["answer 1", "question 2", "answer 2 with [email redacted]", "question 3"]
    assert 'class="context-message assistant target"' in page
    assert "bob@example.com" in page  # the original, for staff only


def test_message_text_is_escaped(staff, bob) -> None:
    reply = make_exchange(bob, "<script>alert(1)</script>", '<img src=x onerror="alert(2)">')
    make_event(reply, excerpt="<b>original</b>")
    page = staff.get(reverse("moderation:queue")).content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "<img src=x" not in page and "<b>original" not in page


def test_an_input_event_marks_the_users_message_and_repeats_nothing(staff, bob) -> None:
    reply = make_exchange(bob, "a risky question", "some answer")
    make_event(reply, stage="input", excerpt="a risky question")
    page = staff.get(reverse("moderation:queue")).content.decode()
    assert re.findall(r'class="context-message (\w+)( target)?"', page) == [
        ("user", " target"),
        ("assistant", ""),
    ]
    assert "staff only" not in page  # the text the hook saw is the message shown


def test_two_items_in_one_conversation_each_get_their_own_surroundings(staff, bob, moderator) -> None:
    first = make_exchange(bob, "q1", "a1")
    conversation = first.conversation
    for turn in (2, 3, 4):
        Message.objects.create(conversation=conversation, role="user", content=f"q{turn}")
        last = Message.objects.create(conversation=conversation, role="assistant", content=f"a{turn}")
    make_event(first, at=T0)
    make_event(last, at=T0 + timedelta(minutes=1))
    services.reply_hide(moderator=moderator, message=last)
    page = staff.get(reverse("moderation:queue")).content.decode()
    items = page.split('<li class="queue-item')[1:]
    assert [re.findall(r'<div class="text">(.*?)</div>', item) for item in items] == [
        ["a3", "q4", "a4"],  # the newest first: nothing after the last reply
        ["q1", "a1", "q2"],  # nothing before the first question
    ]
    assert 'badge hidden-reply">hidden' in items[0] and "hidden-reply" not in items[1]


def test_refresh_and_newest_links_keep_the_filters_and_drop_the_cursor(staff, reply) -> None:
    cursor = Cursor(T0, "event", 5).encode()
    page = staff.get(reverse("moderation:queue"), {"kind": "event", "before": cursor}).content.decode()
    refresh = re.search(r'<a href="([^"]*)" id="live-refresh">', page).group(1)
    newest = re.search(r'<a href="([^"]*)" id="newest-page">', page).group(1)
    assert refresh == "/moderation/?kind=event" and newest == "?kind=event"


def test_an_item_shows_its_own_branch_and_which_version_it_is(staff, bob) -> None:
    first = make_exchange(bob, "q1", "a1")
    conversation = first.conversation
    # A regenerate made a second version of a1, then the talk went on from the first one.
    second = Message.objects.create(
        conversation=conversation, parent=first.parent, role="assistant", content="a1b"
    )
    later = Message.objects.create(conversation=conversation, parent=first, role="user", content="q2 on a1")
    make_event(second, at=T0)
    page = staff.get(reverse("moderation:queue")).content.decode()
    shown = re.findall(r'<div class="text">(.*?)</div>', page, re.S)
    assert shown == ["q1", "a1b"]  # its path, not the messages written around it in time
    assert "version 2 of 2" in page
    make_event(first, at=T0 + timedelta(minutes=1))
    page = staff.get(reverse("moderation:queue")).content.decode()
    assert re.findall(r'<div class="text">(.*?)</div>', page, re.S)[:3] == ["q1", "a1", later.content]
    assert "version 1 of 2" in page
