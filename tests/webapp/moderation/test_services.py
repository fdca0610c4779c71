"""Moderation writes: one audit entry per moderator action, moderators told after commit, inputs checked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inference.moderation.base import Action, Stage, Verdict
from webapp.chat.exports import messages_for_export, render_conversation
from webapp.chat.selectors import messages_of, prompt_history
from webapp.moderation import services
from webapp.moderation.models import AuditLogEntry, CategoryPolicy, HiddenReply, ModerationEvent, Report, Rule
from webapp.moderation.selectors import active_sanction, policy_mapping
from webapp.moderation.services import ModerationInputError

pytestmark = pytest.mark.django_db


@pytest.fixture
def told(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """What the moderators' live group would hear."""
    heard: list[dict] = []
    monkeypatch.setattr(services, "notify_moderators", heard.append)
    return heard


@pytest.fixture
def event(reply) -> ModerationEvent:
    verdict = Verdict(Action.FLAG, ("pii",), 1.0, "e-mail", hook="pii", stage=Stage.OUTPUT)
    [created] = services.moderation_record(reply=reply, verdicts=[verdict], original=reply.content)
    return created


def test_recorded_event_is_open_has_its_category_and_is_announced(
    reply, told, django_capture_on_commit_callbacks
) -> None:
    verdict = Verdict(Action.BLOCK, ("law", "pii"), 0.9, "x", hook="rules", stage=Stage.STREAM)
    with django_capture_on_commit_callbacks(execute=True):
        [event] = services.moderation_record(reply=reply, verdicts=[verdict], original="orig")
    event.refresh_from_db()
    assert (event.status, event.category) == ("open", "law")
    assert told == [
        {
            "kind": "event",
            "id": event.pk,
            "action": "block",
            "stage": "stream",
            "hook": "rules",
            "categories": ["law", "pii"],
            "user_id": reply.conversation.owner_id,
            "message_id": str(reply.pk),
            "created_at": event.created_at.isoformat(),
        }
    ]


def test_nothing_is_announced_before_commit(
    event, moderator, told, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.item_dismiss(moderator=moderator, event=event)
    assert told == []
    for callback in callbacks:
        callback()
    assert [item["action"] for item in told] == ["dismiss"]


@pytest.mark.parametrize(
    ("function", "status"), [(services.item_dismiss, "dismissed"), (services.item_confirm, "confirmed")]
)
def test_reviewing_an_event_logs_it(event, moderator, function, status) -> None:
    function(moderator=moderator, event=event)
    event.refresh_from_db()
    assert (event.status, event.reviewed_by) == (status, moderator)
    assert event.reviewed_at is not None
    [entry] = AuditLogEntry.objects.all()
    assert (entry.moderator, entry.target_type, entry.target_id) == (moderator, "event", str(event.pk))
    assert entry.detail["from"] == "open" and entry.detail["to"] == status


def test_reviewing_a_report_logs_it(bob, reply, moderator) -> None:
    report = services.report_create(reporter=bob, message=reply, reason="harmful", detail="")
    services.item_confirm(moderator=moderator, report=report)
    report.refresh_from_db()
    assert (report.status, report.resolved_by) == ("confirmed", moderator)
    assert AuditLogEntry.objects.get().target_type == "report"


def test_review_needs_exactly_one_item(event, bob, reply, moderator) -> None:
    report = services.report_create(reporter=bob, message=reply, reason="other", detail="")
    for items in ({}, {"event": event, "report": report}):
        with pytest.raises(ModerationInputError):
            services.item_dismiss(moderator=moderator, **items)
    assert not AuditLogEntry.objects.exists()


def test_report_is_idempotent_while_open_and_announced_once(
    bob, reply, told, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = services.report_create(reporter=bob, message=reply, reason="harmful", detail="  bad  ")
        again = services.report_create(reporter=bob, message=reply, reason="other", detail="")
    assert first.pk == again.pk and first.detail == "bad"
    assert Report.objects.count() == 1
    assert [item["kind"] for item in told] == ["report"]


@pytest.mark.parametrize(
    ("reason", "detail", "code"),
    [
        ("nope", "", "invalid_reason"),
        ("", "", "invalid_reason"),
        (None, "", "invalid_reason"),
        ("other", "x" * 1001, "detail_too_long"),
        ("other", 7, "invalid_detail"),
    ],
)
def test_report_input_is_checked(bob, reply, reason, detail, code) -> None:
    with pytest.raises(ModerationInputError) as caught:
        services.report_create(reporter=bob, message=reply, reason=reason, detail=detail)
    assert caught.value.code == code
    assert not Report.objects.exists()


def test_a_user_message_cannot_be_reported(bob, question) -> None:
    with pytest.raises(ModerationInputError) as caught:
        services.report_create(reporter=bob, message=question, reason="other", detail="")
    assert caught.value.code == "not_a_reply"


def test_hidden_reply_leaves_the_page_and_later_turns(conversation, question, reply, moderator) -> None:
    from webapp.chat.models import Message

    follow_up = Message.objects.create(conversation=conversation, role="user", content="and?")
    next_reply = Message.objects.create(conversation=conversation, role="assistant", status="queued")
    services.reply_hide(moderator=moderator, message=reply)
    services.reply_hide(moderator=moderator, message=reply)  # again: nothing more
    assert HiddenReply.objects.get().message == reply
    assert reply not in list(messages_of(conversation))
    exported = render_conversation(conversation, messages_for_export(conversation), "json").decode()
    assert reply.content not in exported and follow_up.content in exported
    turns = prompt_history(next_reply)
    assert "The secret is 42." not in [t["content"] for t in turns]
    assert turns[-1] == {"role": "user", "content": follow_up.content}
    assert AuditLogEntry.objects.get().action == "hide_reply"


def test_only_replies_can_be_hidden(question, moderator) -> None:
    with pytest.raises(ModerationInputError):
        services.reply_hide(moderator=moderator, message=question)


def test_sanctions_apply_and_revoke(bob, moderator) -> None:
    until = timezone.now() + timedelta(hours=2)
    warning = services.sanction_apply(moderator=moderator, user=bob, kind="warn", reason="be nice")
    assert active_sanction(bob) is None  # a warning does not restrict
    suspension = services.sanction_apply(
        moderator=moderator, user=bob, kind="suspend", until=until, reason=""
    )
    assert active_sanction(bob) == suspension
    ban = services.sanction_apply(moderator=moderator, user=bob, kind="ban", reason="spam")
    assert active_sanction(bob) == ban
    assert services.sanction_apply(moderator=moderator, user=bob, kind="ban", reason="again") == ban
    services.sanction_revoke(moderator=moderator, sanction=ban)
    services.sanction_revoke(moderator=moderator, sanction=ban)  # again: nothing more
    assert active_sanction(bob) == suspension
    actions = list(AuditLogEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["sanction_warn", "sanction_suspend", "sanction_ban", "sanction_revoke"]
    assert warning.until is None


def test_an_expired_suspension_does_not_restrict(bob, moderator) -> None:
    suspension = services.sanction_apply(
        moderator=moderator, user=bob, kind="suspend", until=timezone.now() + timedelta(hours=1), reason=""
    )
    type(suspension).objects.filter(pk=suspension.pk).update(until=timezone.now() - timedelta(seconds=1))
    assert active_sanction(bob) is None


@pytest.mark.parametrize(
    ("kind", "until", "reason", "code"),
    [
        ("jail", None, "", "invalid_kind"),
        ("suspend", None, "", "invalid_until"),
        ("suspend", "tomorrow", "", "invalid_until"),
        ("suspend", timezone.now() - timedelta(hours=1), "", "invalid_until"),
        ("ban", timezone.now() + timedelta(hours=1), "", "invalid_until"),
        ("warn", None, "x" * 1001, "reason_too_long"),
        ("warn", None, None, "invalid_reason"),
    ],
)
def test_sanction_input_is_checked(bob, moderator, kind, until, reason, code) -> None:
    with pytest.raises(ModerationInputError) as caught:
        services.sanction_apply(moderator=moderator, user=bob, kind=kind, until=until, reason=reason)
    assert caught.value.code == code
    assert not AuditLogEntry.objects.exists()


def test_staff_and_oneself_are_not_sanctioned(moderator) -> None:
    from django.contrib.auth import get_user_model

    other = get_user_model().objects.create_user(username="mod2", password="x" * 12, is_staff=True)
    for user, code in ((moderator, "self_sanction"), (other, "staff_sanction")):
        with pytest.raises(ModerationInputError) as caught:
            services.sanction_apply(moderator=moderator, user=user, kind="ban", reason="")
        assert caught.value.code == code


def test_rule_from_phrase_creates_then_updates(moderator) -> None:
    rule = services.rule_from_phrase(
        moderator=moderator, phrase="  launch   the codes ", category="law", action="flag"
    )
    assert (rule.kind, rule.pattern, rule.action) == ("phrase", "launch the codes", "flag")
    Rule.objects.filter(pk=rule.pk).update(enabled=False)
    again = services.rule_from_phrase(
        moderator=moderator, phrase="launch the codes", category="law", action="block"
    )
    assert again.pk == rule.pk and (again.action, again.enabled) == ("block", True)
    assert list(AuditLogEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "rule_create",
        "rule_update",
    ]


@pytest.mark.parametrize(
    ("phrase", "category", "action"),
    [
        ("", "law", "flag"),
        ("   ", "law", "flag"),
        ("x" * 201, "law", "flag"),
        ("ok", "nope", "flag"),
        ("ok", "law", "allow"),
        (None, "law", "flag"),
    ],
)
def test_rule_from_phrase_checks_input(moderator, phrase, category, action) -> None:
    with pytest.raises(ModerationInputError):
        services.rule_from_phrase(moderator=moderator, phrase=phrase, category=category, action=action)
    assert not Rule.objects.exists() and not AuditLogEntry.objects.exists()


def test_policy_update_logs_before_and_after(moderator) -> None:
    before = CategoryPolicy.objects.get(category="law")
    services.policy_update(moderator=moderator, category="law", action="block", threshold=0.25)
    assert policy_mapping()["law"] == (Action.BLOCK, 0.25)
    entry = AuditLogEntry.objects.get()
    assert entry.detail["before"] == {"action": before.action, "threshold": before.threshold}
    assert entry.detail["after"] == {"action": "block", "threshold": 0.25}


@pytest.mark.parametrize(
    ("category", "action", "threshold"),
    [
        ("nope", "flag", 0.5),
        ("law", "ban", 0.5),
        ("law", "flag", 1.5),
        ("law", "flag", -0.1),
        ("law", "flag", float("nan")),
        ("law", "flag", True),
        ("law", "flag", "0.5"),
    ],
)
def test_policy_update_checks_input(moderator, category, action, threshold) -> None:
    with pytest.raises(ModerationInputError):
        services.policy_update(moderator=moderator, category=category, action=action, threshold=threshold)
    assert not AuditLogEntry.objects.exists()
