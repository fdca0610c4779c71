"""Actions on queue items, one at a time and in bulk: their effects, all-or-nothing, and clear refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.webapp.moderation.dashboard_support import (
    fast_passwords,  # noqa: F401
    make_event,
    make_exchange,
    make_person,
    make_report,
)
from webapp.chat.models import Message
from webapp.moderation.forms import MAX_BULK_ITEMS
from webapp.moderation.models import AuditLogEntry, HiddenReply, ModerationEvent, Report, Rule, Sanction

pytestmark = pytest.mark.django_db


def act(client: Client, action: str, items: list[str], **fields) -> tuple[str, list[str]]:
    """POST one action; the redirect target and the flash messages."""
    response = client.post(reverse("moderation:act"), {"action": action, "items": items, **fields})
    assert response.status_code == 302
    return response["Location"], [str(m) for m in get_messages(response.wsgi_request)]


def statuses(*rows) -> list[str]:
    return [type(row).objects.get(pk=row.pk).status for row in rows]


@pytest.mark.parametrize(
    ("action", "status", "said"),
    [("dismiss", "dismissed", "Dismissed"), ("confirm", "confirmed", "Confirmed")],
)
def test_review_one_item(staff, reply, bob, action, status, said) -> None:
    event, report = make_event(reply), make_report(reply, bob)
    location, messages = act(staff, action, [f"event:{event.pk}"], next="/moderation/?status=any&kind=event")
    assert location == "/moderation/?status=any&kind=event"  # back where the moderator was
    assert messages == [f"{said} 1 item."]
    assert statuses(event, report) == [status, "open"]


def test_hide_reply(staff, reply) -> None:
    event = make_event(reply)
    assert act(staff, "hide", [f"event:{event.pk}"])[1] == ["Hid 1 reply."]
    assert HiddenReply.objects.get().message == reply


@pytest.mark.parametrize("kind", ["warn", "suspend", "ban"])
def test_sanction_the_author(staff, reply, bob, moderator, kind) -> None:
    event = make_event(reply)
    before = timezone.now()
    _, messages = act(staff, kind, [f"event:{event.pk}"], duration="168", reason="threats")
    sanction = Sanction.objects.get()
    assert (sanction.user, sanction.kind, sanction.reason, sanction.created_by) == (
        bob,
        kind,
        "threats",
        moderator,
    )
    if kind == "suspend":
        assert before + timedelta(days=7) <= sanction.until <= timezone.now() + timedelta(days=7)
    else:
        assert sanction.until is None
    assert messages == [f"{ {'warn': 'Warned', 'suspend': 'Suspended', 'ban': 'Banned'}[kind] } 1 person."]


def test_sanction_without_a_reason_records_what_it_was_for(staff, reply) -> None:
    event = make_event(reply, categories=("hate_and_discrimination",))
    act(staff, "warn", [f"event:{event.pk}"])
    assert (
        Sanction.objects.get().reason
        == f"From the moderation queue: event:{event.pk} (hate_and_discrimination)"
    )


def test_a_sanction_from_items_names_their_exact_messages_in_the_audit_log(staff, bob) -> None:
    first = make_exchange(bob, "q", "a")
    # Another version of the reply, beside the first: the sanction names the one the item is about.
    version = Message.objects.create(conversation=first.conversation, parent=first.parent, role="assistant")
    report = make_report(version, bob)
    act(staff, "warn", [f"report:{report.pk}", f"event:{make_event(version).pk}"])
    entry = AuditLogEntry.objects.get(action="sanction_warn")
    assert entry.detail["message_ids"] == [str(version.pk)]


def test_bulk_review_applies_to_every_selected_item(staff, bob, moderator) -> None:
    carol = make_person("carol")
    events = [make_event(make_exchange(person)) for person in (bob, bob, carol)]
    report = make_report(make_exchange(carol), bob)
    untouched = make_event(make_exchange(bob))
    keys = [f"event:{e.pk}" for e in events] + [f"report:{report.pk}"]
    assert act(staff, "dismiss", keys)[1] == ["Dismissed 4 items."]
    assert statuses(*events, report, untouched) == ["dismissed"] * 4 + ["open"]
    assert AuditLogEntry.objects.filter(moderator=moderator, action="dismiss").count() == 4


def test_bulk_ban_bans_each_person_once(staff, bob) -> None:
    carol = make_person("carol")
    keys = [f"event:{make_event(make_exchange(p)).pk}" for p in (bob, bob, carol)]
    keys.append(f"report:{make_report(make_exchange(bob), carol).pk}")
    assert act(staff, "ban", keys)[1] == ["Banned 2 people."]
    assert sorted(Sanction.objects.values_list("user__username", "kind")) == [
        ("bob", "ban"),
        ("carol", "ban"),
    ]


def test_bulk_hide_hides_each_reply_once(staff, reply, bob) -> None:
    other = make_exchange(bob)
    keys = [
        f"event:{make_event(reply).pk}",
        f"event:{make_event(reply).pk}",
        f"report:{make_report(other, bob).pk}",
    ]
    assert act(staff, "hide", keys)[1] == ["Hid 2 replies."]
    assert HiddenReply.objects.count() == 2


def test_an_unknown_item_refuses_the_whole_bulk_action(staff, reply) -> None:
    event = make_event(reply)
    _, messages = act(staff, "dismiss", [f"event:{event.pk}", "event:999999", "report:77777"])
    assert messages == ["No such item: event:999999, report:77777. Nothing was changed."]
    assert statuses(event) == ["open"] and not AuditLogEntry.objects.exists()


def test_a_refused_service_call_rolls_back_the_others(staff, bob, moderator) -> None:
    """A staff member's item can't be sanctioned here; the ban of the other person is undone too."""
    keys = [f"event:{make_event(make_exchange(bob)).pk}", f"event:{make_event(make_exchange(moderator)).pk}"]
    _, messages = act(staff, "ban", keys)
    assert messages == ["Moderators cannot sanction themselves. Nothing was changed."]
    assert not Sanction.objects.exists() and not AuditLogEntry.objects.exists()


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"action": "suspend"}, "Choose how long to suspend for."),
        (
            {"action": "suspend", "duration": "5"},
            "Select a valid choice. 5 is not one of the available choices.",
        ),
        ({"action": "suspend", "duration": "-24"}, "Select a valid choice."),
        ({"action": "explode"}, "Select a valid choice. explode is not one of the available choices."),
        ({"action": ""}, "This field is required."),
        ({"action": "dismiss", "items": []}, "Select at least one item."),
        ({"action": "dismiss", "items": ["  "]}, "Select at least one item."),
        (
            {"action": "dismiss", "items": ["event:1"] * (MAX_BULK_ITEMS + 1)},
            f"Select at most {MAX_BULK_ITEMS} items",
        ),
        ({"action": "dismiss", "items": ["event:abc"]}, "No such item: event:abc."),
        (
            {"action": "dismiss", "items": ["<script>alert(1)</script>"]},
            "No such item: <script>alert(1)</script",
        ),
        ({"action": "dismiss", "items": ["event:99999999999999999999999"]}, "No such item"),
        ({"action": "warn", "reason": "x" * 1001}, "at most 1000 characters"),
    ],
)
def test_invalid_action_input_is_refused_clearly(staff, reply, fields, says) -> None:
    event = make_event(reply)
    fields.setdefault("items", [f"event:{event.pk}"])
    response = staff.post(reverse("moderation:act"), fields)
    assert response.status_code == 302
    messages = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert says in messages
    assert (
        statuses(event) == ["open"] and not AuditLogEntry.objects.exists() and not Sanction.objects.exists()
    )


@pytest.mark.parametrize(
    "target", ["https://evil.example/moderation/", "//evil.example/", "/c/", "javascript:alert(1)"]
)
def test_next_goes_only_back_to_the_queue(staff, reply, target) -> None:
    event = make_event(reply)
    assert act(staff, "dismiss", [f"event:{event.pk}"], next=target)[0] == reverse("moderation:queue")


def test_rule_from_a_phrase(staff, moderator) -> None:
    response = staff.post(
        reverse("moderation:rule_create"),
        {
            "phrase": "  Build a   BOMB ",
            "category": "dangerous_and_criminal_content",
            "action": "block",
            "next": "/moderation/?kind=report",
        },
    )
    assert response["Location"] == "/moderation/?kind=report"
    rule = Rule.objects.get()
    assert (rule.kind, rule.pattern, rule.category, rule.action) == (
        "phrase",
        "Build a BOMB",
        "dangerous_and_criminal_content",
        "block",
    )
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Rule saved: block “Build a BOMB” (dangerous_and_criminal_content)."
    ]
    assert AuditLogEntry.objects.get(moderator=moderator).action == "rule_create"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"phrase": ""}, "Enter the phrase."),
        ({"phrase": "   "}, "Enter the phrase."),
        ({"phrase": "x" * 201}, "at most 200 characters"),
        ({"category": "spam"}, "Select a valid choice"),
        ({"action": "allow"}, "Select a valid choice"),
        ({"category": ""}, "This field is required."),
    ],
)
def test_invalid_rules_are_refused_clearly(staff, fields, says) -> None:
    fields = {"phrase": "bad words", "category": "violence_and_threats", "action": "flag", **fields}
    response = staff.post(reverse("moderation:rule_create"), fields)
    assert response.status_code == 302
    assert says in " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert not Rule.objects.exists()


def test_a_rule_phrase_is_literal_text_not_a_pattern(staff) -> None:
    staff.post(reverse("moderation:rule_create"), {"phrase": "(a+)+$", "category": "law", "action": "flag"})
    assert Rule.objects.get().kind == "phrase"


def test_dismissed_items_leave_the_default_queue(staff, reply) -> None:
    event = make_event(reply)
    act(staff, "dismiss", [f"event:{event.pk}"])
    page = staff.get(reverse("moderation:queue")).content.decode()
    assert f'data-item="event:{event.pk}"' not in page
    assert ModerationEvent.objects.get().status == "dismissed" and not Report.objects.exists()
