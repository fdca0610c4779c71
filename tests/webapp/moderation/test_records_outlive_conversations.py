"""Deleting a conversation never deletes the moderation record of what was said: the excerpt stays.

Whoever deletes it (its owner, retention, a regenerated reply), events and
reports keep their row with a null message and the text in `excerpt`, and
the moderators' queue still shows and acts on them.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.webapp.moderation.dashboard_support import fast_passwords  # noqa: F401
from webapp.chat.services import conversation_delete
from webapp.moderation.models import ModerationEvent, Report, ReviewStatus, Sanction
from webapp.moderation.queue import QueueFilters, queue_page
from webapp.moderation.services import moderation_record, report_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def records(reply, bob):
    """An open event and an open report of Bob's reply, made by the services that make them in production."""
    from inference.moderation.base import Action, Stage, Verdict

    (event,) = moderation_record(
        reply=reply,
        verdicts=[Verdict(action=Action.FLAG, categories=("pii",), hook="rules", stage=Stage.OUTPUT)],
        original="The secret is 42, unredacted.",
    )
    report = report_create(reporter=bob, message=reply, reason="privacy", detail="it leaked")
    return event, report


def test_the_owner_deleting_the_conversation_leaves_both_records_with_their_text(
    records, conversation
) -> None:
    event, report = records
    conversation_delete(conversation=conversation)
    event, report = ModerationEvent.objects.get(pk=event.pk), Report.objects.get(pk=report.pk)
    assert event.message_id is None and event.excerpt == "The secret is 42, unredacted."
    assert report.message_id is None and report.excerpt == "The secret is 42."
    assert (event.status, report.status) == (ReviewStatus.OPEN, ReviewStatus.OPEN)
    assert event.user.get_username() == report.reporter.get_username() == "bob"


def test_the_queue_shows_them_with_what_was_said(records, conversation, staff) -> None:
    conversation_delete(conversation=conversation)
    items = queue_page(QueueFilters()).items
    assert {item.kind for item in items} == {"event", "report"}
    assert all(
        item.message is None and item.context == [] and item.user.get_username() == "bob" for item in items
    )
    assert {item.original for item in items} == {"The secret is 42, unredacted.", "The secret is 42."}

    html = staff.get(reverse("moderation:queue")).content.decode()
    assert html.count("The conversation was deleted; the record keeps what was said.") == 2
    assert "The secret is 42, unredacted." in html and "What was said (staff only)" in html


def test_the_queue_page_costs_the_same_queries_with_deleted_conversations(records, conversation, bob) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.webapp.moderation.dashboard_support import make_event, make_exchange

    for _ in range(3):
        make_event(make_exchange(bob))
    with CaptureQueriesContext(connection) as before:
        [item.user for item in queue_page(QueueFilters()).items]
    conversation_delete(conversation=conversation)
    with CaptureQueriesContext(connection) as after:
        users = [item.user.get_username() for item in queue_page(QueueFilters()).items]
    assert users == ["bob"] * 5 and len(after) == len(before)


def test_filtering_by_the_person_still_finds_them(records, conversation, bob) -> None:
    conversation_delete(conversation=conversation)
    assert len(queue_page(QueueFilters(user=bob)).items) == 2


def test_moderators_can_still_act_on_them(records, conversation, staff) -> None:
    event, report = records
    conversation_delete(conversation=conversation)
    keys = [f"event:{event.pk}", f"report:{report.pk}"]
    # Nothing left to hide: no error, nothing hidden.
    assert staff.post(reverse("moderation:act"), {"action": "hide", "items": keys}).status_code == 302
    assert staff.post(reverse("moderation:act"), {"action": "ban", "items": keys}).status_code == 302
    assert Sanction.objects.get().user.get_username() == "bob"
    staff.post(reverse("moderation:act"), {"action": "dismiss", "items": keys})
    assert {ModerationEvent.objects.get().status, Report.objects.get().status} == {ReviewStatus.DISMISSED}


def test_a_regenerated_reply_keeps_its_event_too(records, reply) -> None:
    event, _ = records
    reply.delete()
    assert ModerationEvent.objects.get(pk=event.pk).excerpt == "The secret is 42, unredacted."
