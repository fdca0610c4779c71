"""Writes of the moderation app: what the hooks decided, what users report, what moderators do.

Each moderator action writes one AuditLogEntry in its own transaction and
tells the moderators' live group after commit (`live.notify_moderators`).
`check_*` functions validate and raise ModerationInputError.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from inference.moderation.base import CATEGORIES, Action, Stage, Verdict
from inference.moderation.rules import Rule as RuleSpec
from inference.moderation.rules import RuleError
from webapp import metrics
from webapp.accounts.access import is_protected_from_sanctions
from webapp.chat import events as chat_events
from webapp.chat import live as chat_live
from webapp.chat.models import Message
from webapp.moderation.live import notify_moderators
from webapp.moderation.models import (
    AuditLogEntry,
    CategoryPolicy,
    HiddenReply,
    ModerationEvent,
    Report,
    ReviewStatus,
    Rule,
    Sanction,
)
from webapp.moderation.selectors import active_sanction, sanctions_in_force

EXCERPT_CHARS = 4000
MAX_DETAIL_CHARS = 1000  # a report's detail and a sanction's reason


class ModerationInputError(Exception):
    """Input a moderation write refuses; `code` is stable, `message` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- what the hooks decided ---------------------------------------------------------


def moderation_record(*, reply: Message, verdicts: Sequence[Verdict], original: str) -> list[ModerationEvent]:
    """Store one event per verdict on `reply` (its caller's transaction); staff see the unredacted excerpt."""
    if not verdicts:
        return []
    question = (
        reply.conversation.messages.filter(role=Message.Role.USER, created_at__lt=reply.created_at)
        .order_by("-created_at")
        .values_list("content", flat=True)
        .first()
        or ""
    )
    rows = [
        ModerationEvent(
            message=reply,
            user_id=reply.conversation.owner_id,
            hook=verdict.hook,
            stage=(verdict.stage or Stage.OUTPUT).value,
            action=verdict.action.value,
            categories=list(verdict.categories),
            category=verdict.categories[0] if verdict.categories else "",
            score=verdict.score,
            reason=verdict.reason,
            error=verdict.error,
            latency_ms=verdict.latency_ms,
            excerpt=(question if verdict.stage == Stage.INPUT else original)[:EXCERPT_CHARS],
        )
        for verdict in verdicts
    ]
    created = ModerationEvent.objects.bulk_create(rows)
    transaction.on_commit(lambda: metrics.moderation_recorded(created))
    items = [_event_item(row) for row in created if row.pk is not None]
    for item in items:
        _notify_after_commit(item)
    return created


def _notify_after_commit(item: dict[str, Any]) -> None:
    # robust: a Redis blip after commit is logged by Django, never turned into a failed request.
    transaction.on_commit(lambda: notify_moderators(item), robust=True)


def _event_item(event: ModerationEvent) -> dict[str, Any]:
    return {
        "kind": "event",
        "id": event.pk,
        "action": event.action,
        "stage": event.stage,
        "hook": event.hook,
        "categories": event.categories,
        "user_id": event.user_id,
        "message_id": str(event.message_id),
        "created_at": event.created_at.isoformat(),
    }


# --- reports ------------------------------------------------------------------------


def check_report(*, message: Message, reason: object, detail: object) -> tuple[str, str]:
    """The reason and the stripped detail of a report of `message`, or ModerationInputError."""
    if message.role != Message.Role.ASSISTANT:
        raise ModerationInputError("not_a_reply", "Only the assistant's replies can be reported.")
    if not isinstance(reason, str) or reason not in Report.Reason.values:
        raise ModerationInputError("invalid_reason", f"Choose a reason: {', '.join(Report.Reason.values)}.")
    if detail is None:
        detail = ""
    if not isinstance(detail, str):
        raise ModerationInputError("invalid_detail", "The detail must be text.")
    detail = detail.strip()
    if len(detail) > MAX_DETAIL_CHARS:
        raise ModerationInputError("detail_too_long", f"Keep the detail under {MAX_DETAIL_CHARS} characters.")
    return reason, detail


def report_create(*, reporter: AbstractBaseUser, message: Message, reason: object, detail: object) -> Report:
    """Report a reply; a second report of it by the same user while the first is open returns the first.

    The caller has checked that `reporter` may see `message` (its conversation's access check).
    """
    reason, detail = check_report(message=message, reason=reason, detail=detail)
    existing = Report.objects.filter(reporter=reporter, message=message, status=ReviewStatus.OPEN).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            report = Report.objects.create(
                reporter=reporter,
                message=message,
                reason=reason,
                detail=detail,
                excerpt=message.content[:EXCERPT_CHARS],
            )
    except IntegrityError:  # the same report, sent twice at once: the other one won
        return Report.objects.get(reporter=reporter, message=message, status=ReviewStatus.OPEN)
    item = {
        "kind": "report",
        "id": report.pk,
        "reason": report.reason,
        "message_id": str(message.pk),
        "user_id": reporter.pk,
        "created_at": report.created_at.isoformat(),
    }
    _notify_after_commit(item)
    return report


# --- the audit log --------------------------------------------------------------------


def _audit(
    *, moderator: AbstractBaseUser, action: str, target: Any, target_type: str, detail: dict[str, Any]
) -> AuditLogEntry:
    """One entry in the caller's transaction, announced to moderators after commit."""
    entry = AuditLogEntry.objects.create(
        moderator=moderator, action=action, target_type=target_type, target_id=str(target.pk), detail=detail
    )
    item = {
        "kind": "action",
        "id": entry.pk,
        "action": action,
        "target_type": target_type,
        "target_id": entry.target_id,
        "moderator": moderator.get_username(),
        "detail": detail,
        "created_at": entry.created_at.isoformat(),
    }
    _notify_after_commit(item)
    return entry


# --- reviewing queue items ------------------------------------------------------------


def item_dismiss(
    *, moderator: AbstractBaseUser, event: ModerationEvent | None = None, report: Report | None = None
) -> ModerationEvent | Report:
    """Close a queue item (an event or a report) as nothing to act on."""
    return _review(moderator=moderator, event=event, report=report, status=ReviewStatus.DISMISSED)


def item_confirm(
    *, moderator: AbstractBaseUser, event: ModerationEvent | None = None, report: Report | None = None
) -> ModerationEvent | Report:
    """Close a queue item (an event or a report) as a real problem."""
    return _review(moderator=moderator, event=event, report=report, status=ReviewStatus.CONFIRMED)


def _review(
    *,
    moderator: AbstractBaseUser,
    event: ModerationEvent | None,
    report: Report | None,
    status: ReviewStatus,
) -> ModerationEvent | Report:
    if (event is None) == (report is None):
        raise ModerationInputError("one_item", "Give exactly one of an event or a report.")
    now = timezone.now()
    with transaction.atomic():
        if event is not None:
            item: ModerationEvent | Report = ModerationEvent.objects.select_for_update().get(pk=event.pk)
            previous = item.status
            item.status, item.reviewed_by, item.reviewed_at = status, moderator, now
            item.save(update_fields=["status", "reviewed_by", "reviewed_at"])
            target_type = "event"
        else:
            item = Report.objects.select_for_update().get(pk=report.pk)
            previous = item.status
            item.status, item.resolved_by, item.resolved_at = status, moderator, now
            try:
                with transaction.atomic():
                    item.save(update_fields=["status", "resolved_by", "resolved_at"])
            except IntegrityError:  # reopening while the user has a newer open report
                raise ModerationInputError("report_open", "The user has another open report of it.") from None
            target_type = "report"
        action = "dismiss" if status == ReviewStatus.DISMISSED else "confirm"
        _audit(
            moderator=moderator,
            action=action,
            target=item,
            target_type=target_type,
            detail={
                "from": previous,
                "to": status.value,
                "message_id": item.message_id and str(item.message_id),
            },
        )
    return item


# --- replies --------------------------------------------------------------------------


def reply_hide(*, moderator: AbstractBaseUser, message: Message) -> HiddenReply:
    """Hide a reply from its owner's page, exports and later turns; staff still see it.

    Hiding a hidden reply changes nothing and logs nothing.
    """
    if message.role != Message.Role.ASSISTANT:
        raise ModerationInputError("not_a_reply", "Only the assistant's replies can be hidden.")
    with transaction.atomic():
        hidden, created = HiddenReply.objects.get_or_create(
            message=message, defaults={"hidden_by": moderator}
        )
        if created:
            _audit(
                moderator=moderator,
                action="hide_reply",
                target=message,
                target_type="message",
                detail={"conversation_id": str(message.conversation_id)},
            )
            # Open pages of the conversation drop the reply, as they do a regenerated one.
            conversation_id, removed = message.conversation_id, chat_events.removed_event([message.id])
            transaction.on_commit(lambda: chat_live.publish(conversation_id, removed))
    return hidden


# --- sanctions ------------------------------------------------------------------------


def check_sanction(
    *, moderator: AbstractBaseUser, user: AbstractBaseUser, kind: object, until: object, reason: object
) -> tuple[str, datetime | None, str]:
    if kind not in Sanction.Kind.values:
        raise ModerationInputError("invalid_kind", "A sanction is warn, suspend or ban.")
    if user.pk == moderator.pk:
        raise ModerationInputError("self_sanction", "Moderators cannot sanction themselves.")
    if is_protected_from_sanctions(user):
        raise ModerationInputError(
            "staff_sanction",
            "Moderators and administrators are not sanctioned here; change their role first.",
        )
    if kind == Sanction.Kind.SUSPEND:
        if not isinstance(until, datetime) or timezone.is_naive(until):
            raise ModerationInputError("invalid_until", "A suspension needs an end time (with a time zone).")
        if until <= timezone.now():
            raise ModerationInputError("invalid_until", "A suspension must end in the future.")
    elif until is not None:
        raise ModerationInputError("invalid_until", "Only a suspension has an end time.")
    if not isinstance(reason, str):
        raise ModerationInputError("invalid_reason", "The reason must be text.")
    reason = reason.strip()
    if len(reason) > MAX_DETAIL_CHARS:
        raise ModerationInputError("reason_too_long", f"Keep the reason under {MAX_DETAIL_CHARS} characters.")
    return kind, until if kind == Sanction.Kind.SUSPEND else None, reason


def sanction_apply(
    *,
    moderator: AbstractBaseUser,
    user: AbstractBaseUser,
    kind: str,
    until: datetime | None = None,
    reason: str,
    message_ids: Sequence[object] = (),
) -> Sanction:
    """Warn, suspend (until a time) or ban `user`; a ban also ends their sessions (see enforcement).

    `message_ids`: the messages it was taken for (from queue items), named in
    the audit log: the exact versions, wherever they sit in their tree.

    Banning a user already banned returns the ban in force and logs nothing (bulk actions
    over several items of one user ban them once).
    """
    kind, until, reason = check_sanction(
        moderator=moderator, user=user, kind=kind, until=until, reason=reason
    )
    with transaction.atomic():
        if kind == Sanction.Kind.BAN:
            banned = sanctions_in_force(user).filter(kind=Sanction.Kind.BAN).first()
            if banned is not None:
                return banned
        sanction = Sanction.objects.create(
            user=user, kind=kind, until=until, reason=reason, created_by=moderator
        )
        _audit(
            moderator=moderator,
            action=f"sanction_{kind}",
            target=user,
            target_type="user",
            detail={
                "sanction_id": sanction.pk,
                "until": until.isoformat() if until else None,
                "reason": reason,
                **({"message_ids": [str(key) for key in message_ids]} if message_ids else {}),
            },
        )
        if kind == Sanction.Kind.BAN:
            # Open chat tabs close now, not at their next send (robust: Redis may blink).
            transaction.on_commit(lambda: chat_live.sessions_end(user.pk), robust=True)
    return sanction


def sanction_revoke(*, moderator: AbstractBaseUser, sanction: Sanction) -> Sanction:
    """End a sanction now; revoking a revoked one changes nothing and logs nothing."""
    with transaction.atomic():
        sanction = Sanction.objects.select_for_update().get(pk=sanction.pk)
        if sanction.revoked_at is not None:
            return sanction
        sanction.revoked_at, sanction.revoked_by = timezone.now(), moderator
        sanction.save(update_fields=["revoked_at", "revoked_by"])
        _audit(
            moderator=moderator,
            action="sanction_revoke",
            target=sanction,
            target_type="sanction",
            detail={"user_id": sanction.user_id, "kind": sanction.kind},
        )
    return sanction


def check_not_sanctioned(user: AbstractBaseUser | int) -> None:
    """Raise the chat's input error if a ban or a suspension stops the user from sending now."""
    # Imported here: webapp.chat.services calls this module's function from its checks.
    from webapp.chat.services import ChatInputError

    sanction = active_sanction(user)
    if sanction is None:
        return
    if sanction.kind == Sanction.Kind.BAN:
        raise ChatInputError("banned", "Your account is banned.")
    until = timezone.localtime(sanction.until).strftime("%Y-%m-%d %H:%M %Z")
    raise ChatInputError("suspended", f"Your account is suspended until {until}; nothing was sent.")


# --- rules and policies ---------------------------------------------------------------


def rule_from_phrase(
    *, moderator: AbstractBaseUser, phrase: object, category: object, action: object
) -> Rule:
    """A phrase rule from text seen in the queue; an existing rule for the phrase is updated and enabled."""
    if not isinstance(phrase, str) or not phrase.strip():
        raise ModerationInputError("invalid_rule", "The phrase is empty.")
    phrase = " ".join(phrase.split())
    if action not in {a.value for a in Action if a != Action.ALLOW}:
        raise ModerationInputError("invalid_rule", "The action must be flag, redact or block.")
    try:
        RuleSpec(category, Action(action), "phrase", phrase)  # type: ignore[arg-type]
    except RuleError as error:
        raise ModerationInputError("invalid_rule", str(error)) from None
    with transaction.atomic():
        rule, created = Rule.objects.update_or_create(
            kind=Rule.Kind.PHRASE,
            pattern=phrase,
            defaults={"category": category, "action": action, "enabled": True},
        )
        _audit(
            moderator=moderator,
            action="rule_create" if created else "rule_update",
            target=rule,
            target_type="rule",
            detail={"pattern": phrase, "category": category, "action": action},
        )
    return rule


def check_policy(*, category: object, action: object, threshold: object) -> tuple[str, str, float]:
    if category not in CATEGORIES:
        raise ModerationInputError("invalid_category", f"Unknown category; one of: {', '.join(CATEGORIES)}.")
    if action not in {a.value for a in Action}:
        raise ModerationInputError("invalid_action", "The action must be allow, flag, redact or block.")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise ModerationInputError("invalid_threshold", "The threshold must be a number from 0 to 1.")
    if not 0.0 <= threshold <= 1.0:
        raise ModerationInputError("invalid_threshold", "The threshold must be a number from 0 to 1.")
    return category, action, float(threshold)


def policy_update(
    *, moderator: AbstractBaseUser, category: str, action: str, threshold: float
) -> CategoryPolicy:
    """Set a category's policy; running workers follow it from their next reply."""
    category, action, threshold = check_policy(category=category, action=action, threshold=threshold)
    with transaction.atomic():
        policy = CategoryPolicy.objects.select_for_update().filter(category=category).first()
        before = {"action": policy.action, "threshold": policy.threshold} if policy else None
        if policy is None:
            policy = CategoryPolicy(category=category)
        policy.action, policy.threshold, policy.updated_by = action, threshold, moderator
        policy.save()
        _audit(
            moderator=moderator,
            action="policy_update",
            target=policy,
            target_type="policy",
            detail={
                "category": category,
                "before": before,
                "after": {"action": action, "threshold": threshold},
            },
        )
    return policy
