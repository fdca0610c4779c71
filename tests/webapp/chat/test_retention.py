"""Retention: what is due, what legal hold keeps, batches, dry runs, the command and the task.

Ordinary database tests: they run on SQLite and again on PostgreSQL in CI.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from webapp.accounts.models import AccountSettings
from webapp.chat.models import Conversation, Message
from webapp.chat.retention import retention_apply
from webapp.chat.search import search_conversations
from webapp.chat.tasks import apply_retention
from webapp.moderation.models import ModerationEvent, ReviewStatus, Sanction

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob():
    return get_user_model().objects.create_user(username="bob", password="x")


@pytest.fixture
def moderator():
    return get_user_model().objects.create_user(username="mod", password="x", is_staff=True)


def chat(owner, *, untouched_days: float = 0, title: str = "chat", reply: str = "An answer.") -> Conversation:
    """A conversation with a question and a reply, last touched `untouched_days` ago."""
    conversation = Conversation.objects.create(owner=owner, title=title)
    Message.objects.create(conversation=conversation, role="user", content="A question.")
    Message.objects.create(conversation=conversation, role="assistant", content=reply)
    # auto_now would overwrite a saved time: an update sets it as it was.
    Conversation.objects.filter(pk=conversation.pk).update(
        updated_at=timezone.now() - timedelta(days=untouched_days)
    )
    return conversation


def temporary(owner, *, expires_in_hours: float) -> Conversation:
    conversation = Conversation.objects.create(
        owner=owner, expires_at=timezone.now() + timedelta(hours=expires_in_hours)
    )
    Message.objects.create(conversation=conversation, role="user", content="Nobody may keep this.")
    return conversation


def exists(conversation: Conversation) -> bool:
    return Conversation.objects.filter(pk=conversation.pk).exists()


def event_on(message: Message, *, status: str = ReviewStatus.OPEN) -> ModerationEvent:
    return ModerationEvent.objects.create(
        message=message,
        user=message.conversation.owner,
        hook="rules",
        stage="output",
        action="flag",
        categories=["pii"],
        excerpt=message.content,
        status=status,
    )


def the_reply(conversation: Conversation) -> Message:
    return conversation.messages.get(role="assistant")


def test_off_by_default_nothing_old_is_deleted(bob) -> None:
    ancient = chat(bob, untouched_days=5000)
    report = retention_apply()
    assert exists(ancient) and report.conversations == 0


def test_conversations_untouched_past_the_limit_go_with_their_messages(bob, settings) -> None:
    settings.RETENTION_DAYS = 30
    old, recent = chat(bob, untouched_days=31), chat(bob, untouched_days=29)
    report = retention_apply()
    assert not exists(old) and exists(recent)
    assert not Message.objects.filter(conversation_id=old.pk).exists()
    assert (report.expired, report.temporary, report.messages) == (1, 0, 2)
    assert report.conversation_ids == [str(old.pk)]
    # Search reads the messages themselves: nothing of the old one is found any more.
    assert [hit.conversation_id for hit in search_conversations(bob, "answer")] == [recent.pk]


def test_a_persons_shorter_choice_applies_to_them_alone(bob, settings) -> None:
    alice = get_user_model().objects.create_user(username="alice", password="x")
    AccountSettings.objects.create(user=bob, retention_days=30)
    bobs, alices = chat(bob, untouched_days=40), chat(alice, untouched_days=40)
    retention_apply()
    assert not exists(bobs) and exists(alices)  # the deployment keeps for ever; Bob chose 30 days


def test_a_longer_choice_never_outlasts_the_deployments_limit(bob, settings) -> None:
    settings.RETENTION_DAYS = 90
    # Chosen when the limit was longer (or written by hand): the deployment's limit still wins.
    AccountSettings.objects.create(user=bob, retention_days=365)
    over, under = chat(bob, untouched_days=91), chat(bob, untouched_days=89)
    retention_apply()
    assert not exists(over) and exists(under)


def test_temporary_chats_go_when_their_time_is_up(bob) -> None:
    ended, running = temporary(bob, expires_in_hours=-0.01), temporary(bob, expires_in_hours=1)
    report = retention_apply()
    assert not exists(ended) and exists(running)
    assert (report.temporary, report.expired) == (1, 0)


def test_a_reply_in_progress_keeps_its_conversation_until_it_ends(bob) -> None:
    ended = temporary(bob, expires_in_hours=-1)
    reply = Message.objects.create(conversation=ended, role="assistant", status=Message.Status.STREAMING)
    assert retention_apply().conversations == 0 and exists(ended)
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE)
    assert retention_apply().conversations == 1 and not exists(ended)


def test_an_open_moderation_event_holds_until_a_moderator_closes_it(bob, moderator, settings) -> None:
    from webapp.moderation.services import item_dismiss

    settings.RETENTION_DAYS = 30
    held = chat(bob, untouched_days=400, reply="My card is 4111 1111 1111 1111")
    event = event_on(the_reply(held))
    report = retention_apply()
    assert exists(held) and (report.conversations, report.held) == (0, 1)

    item_dismiss(moderator=moderator, event=event)
    report = retention_apply()
    assert not exists(held) and (report.conversations, report.held) == (1, 0)
    # The record of what was said stays, with its excerpt, without the conversation.
    event.refresh_from_db()
    assert event.message_id is None and event.excerpt == "My card is 4111 1111 1111 1111"
    assert event.user == bob and event.status == ReviewStatus.DISMISSED


def test_an_open_report_holds_and_a_closed_one_keeps_the_reported_text(bob, moderator, settings) -> None:
    from webapp.moderation.services import item_confirm, report_create

    settings.RETENTION_DAYS = 30
    held = chat(bob, untouched_days=400, reply="Something awful.")
    report_row = report_create(reporter=bob, message=the_reply(held), reason="harmful", detail="")
    assert retention_apply().held == 1 and exists(held)

    item_confirm(moderator=moderator, report=report_row)
    retention_apply()
    assert not exists(held)
    report_row.refresh_from_db()
    assert report_row.message_id is None and report_row.excerpt == "Something awful."
    assert report_row.reporter == bob and report_row.status == ReviewStatus.CONFIRMED


def test_a_sanction_in_force_holds_the_persons_conversations(bob, moderator, settings) -> None:
    settings.RETENTION_DAYS = 30
    held = chat(bob, untouched_days=400)
    ban = Sanction.objects.create(user=bob, kind=Sanction.Kind.BAN, created_by=moderator)
    assert retention_apply().held == 1 and exists(held)

    Sanction.objects.filter(pk=ban.pk).update(revoked_at=timezone.now(), revoked_by=moderator)
    # An ended suspension and a warning hold nothing.
    Sanction.objects.create(
        user=bob, kind=Sanction.Kind.SUSPEND, until=timezone.now() - timedelta(hours=1), created_by=moderator
    )
    Sanction.objects.create(user=bob, kind=Sanction.Kind.WARN, created_by=moderator)
    assert retention_apply().conversations == 1 and not exists(held)


def test_a_running_suspension_holds_too(bob, moderator) -> None:
    ended = temporary(bob, expires_in_hours=-1)
    Sanction.objects.create(
        user=bob, kind=Sanction.Kind.SUSPEND, until=timezone.now() + timedelta(hours=1), created_by=moderator
    )
    assert retention_apply().held == 1 and exists(ended)


def test_a_closed_event_does_not_hold(bob, settings) -> None:
    settings.RETENTION_DAYS = 30
    old = chat(bob, untouched_days=31)
    event_on(the_reply(old), status=ReviewStatus.CONFIRMED)
    assert retention_apply().conversations == 1 and not exists(old)
    assert ModerationEvent.objects.get().message_id is None


def test_dry_run_deletes_nothing_and_says_what_would_go(bob, settings) -> None:
    settings.RETENTION_DAYS = 30
    old, ended = chat(bob, untouched_days=31), temporary(bob, expires_in_hours=-1)
    held = chat(bob, untouched_days=31)
    event_on(the_reply(held))
    report = retention_apply(dry_run=True)
    assert exists(old) and exists(ended) and exists(held)
    assert (report.expired, report.temporary, report.held, report.messages) == (1, 1, 1, 3)
    assert sorted(report.conversation_ids) == sorted([str(old.pk), str(ended.pk)])
    assert report.summary().startswith("retention would delete 2 conversations")


def test_batches_and_a_second_run_finds_nothing(bob, settings, caplog) -> None:
    settings.RETENTION_DAYS = 30
    old = [chat(bob, untouched_days=31 + i, title=f"old {i}") for i in range(5)]
    kept = chat(bob, untouched_days=1)
    with caplog.at_level(logging.INFO, logger="webapp.chat.retention"):
        report = retention_apply(batch_size=2)
    assert report.batches == 3 and report.conversations == 5 and report.messages == 10
    assert not any(exists(c) for c in old) and exists(kept)
    # Each deletion is logged with its reason, then the run's summary.
    for conversation in old:
        assert (
            f"retention deleted conversation {conversation.pk} of user {bob.pk} (past retention"
            in caplog.text
        )
    assert "retention deleted 5 conversations (0 temporary, 5 past retention) with 10 messages" in caplog.text

    again = retention_apply(batch_size=2)
    assert (again.conversations, again.batches) == (0, 0) and exists(kept)


def test_the_command_dry_run_lists_and_the_real_run_deletes(bob, settings, capsys) -> None:
    settings.RETENTION_DAYS = 30
    old = chat(bob, untouched_days=31)
    call_command("apply_retention", "--dry-run")
    out = capsys.readouterr().out
    assert f"would delete {old.pk}" in out and "Retention would delete 1 conversations" in out
    assert exists(old)

    call_command("apply_retention", "--batch-size", "10")
    assert "Retention deleted 1 conversations" in capsys.readouterr().out and not exists(old)


@pytest.mark.parametrize("size", ["0", "-3", "many"])
def test_the_command_refuses_a_bad_batch_size_and_deletes_nothing(bob, settings, size: str) -> None:
    settings.RETENTION_DAYS = 30
    old = chat(bob, untouched_days=31)
    with pytest.raises(CommandError, match="batch"):
        call_command("apply_retention", "--batch-size", size)
    assert exists(old)


def test_the_scheduled_task_applies_retention(bob) -> None:
    ended = temporary(bob, expires_in_hours=-1)
    assert apply_retention() == {"conversations": 1, "messages": 1, "held": 0}
    assert not exists(ended)


def test_the_beat_schedule_sends_the_task_to_the_maintenance_queue() -> None:
    from django.conf import settings

    from webapp.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["apply-retention"]
    assert (
        entry["task"] == "webapp.chat.apply_retention" and entry["schedule"] == settings.RETENTION_INTERVAL_S
    )
    assert app.amqp.router.route({}, entry["task"])["queue"].name == "maintenance"


def test_an_api_request_not_to_be_stored_goes_once_moderators_close_what_kept_it(bob, moderator) -> None:
    from webapp.api.models import ApiConversation
    from webapp.moderation.services import item_dismiss

    unstored, stored = chat(bob), chat(bob)
    ApiConversation.objects.create(conversation=unstored, stored=False)
    ApiConversation.objects.create(conversation=stored, stored=True)
    event = event_on(the_reply(unstored))  # why the API kept it after its response
    assert retention_apply().held == 1 and exists(unstored)

    item_dismiss(moderator=moderator, event=event)
    report = retention_apply()
    assert not exists(unstored) and exists(stored)  # a stored one follows retention like any other
    assert (report.temporary, report.expired) == (1, 0)
    assert ModerationEvent.objects.get().excerpt == "An answer."


@pytest.mark.parametrize("meanwhile", ["a message", "a report"])
def test_what_changed_between_finding_and_deleting_is_checked_again(
    bob, settings, monkeypatch, meanwhile
) -> None:
    from webapp.chat import retention
    from webapp.moderation.services import report_create

    settings.RETENTION_DAYS = 30
    old = chat(bob, untouched_days=31)
    find = retention.deletable_conversations

    def found_then_changed(*, now):
        found = list(find(now=now).values_list("id", flat=True))
        if meanwhile == "a message":  # the owner came back to it
            Conversation.objects.filter(pk=old.pk).update(updated_at=timezone.now())
        else:
            report_create(reporter=bob, message=the_reply(old), reason="harmful", detail="")
        return Conversation.objects.filter(id__in=found).order_by("updated_at", "id")

    monkeypatch.setattr(retention, "deletable_conversations", found_then_changed)
    report = retention.retention_apply()
    assert exists(old) and report.conversations == 0
