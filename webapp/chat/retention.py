"""Retention: which conversations are due for deletion, and deleting them in batches.

A conversation is due when it is a temporary chat past its `expires_at`, an
API request not to be stored (API_STORE_CONVERSATIONS off: kept after its
response only because moderation caught something), or when nobody has
touched it (`updated_at`: no new message, rename or setting) for longer than
the deployment keeps conversations (RETENTION_DAYS) or than its owner chose
on their account page, whichever is shorter. A due
conversation on legal hold (webapp.moderation.selectors.legal_hold) or with
a reply still queued or streaming is kept until a later run.

Deleting a conversation deletes its messages (and the rows hanging off them:
the API link, hidden-reply marks); moderation events and reports outlive it,
their message link set to null, with the text they were about in their
excerpt. Nothing else is derived from a conversation: search reads the
messages themselves, exports are streamed from them with no job or file
stored, and the Redis keys of a reply expire on their own (live.LIVE_TTL_S).

`retention_apply` runs from Celery beat (webapp/chat/tasks.py) and from
`manage.py apply_retention`; running it twice deletes nothing more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Exists, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from webapp.accounts.models import AccountSettings
from webapp.chat.models import Conversation, Message
from webapp.moderation.selectors import legal_hold

logger = logging.getLogger(__name__)

# Conversation ids a dry run lists; it counts them all.
DRY_RUN_LISTED = 100


@dataclass
class RetentionReport:
    """What one run deleted, or with `dry_run` would delete, and what it kept on hold."""

    dry_run: bool
    temporary: int = 0  # temporary chats past their time, and API requests not to be stored
    expired: int = 0  # conversations untouched for longer than their retention
    messages: int = 0
    held: int = 0  # due, but on legal hold
    batches: int = 0
    conversation_ids: list[str] = field(default_factory=list)

    @property
    def conversations(self) -> int:
        return self.temporary + self.expired

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"retention {verb} {self.conversations} conversations ({self.temporary} temporary, "
            f"{self.expired} past retention) with {self.messages} messages; "
            f"{self.held} kept on legal hold"
        )


def _reasons(now: datetime) -> list[Q]:
    """Each reason a conversation may be due, as a filter on one row."""
    reasons = [Q(expires_at__lte=now), Q(api_link__stored=False)]
    limit = settings.RETENTION_DAYS
    if limit:
        reasons.append(Q(updated_at__lt=now - timedelta(days=limit)))
    # One reason per distinct choice people made: a handful, whatever the number of people.
    chosen = (
        AccountSettings.objects.filter(retention_days__isnull=False)
        .values_list("retention_days", flat=True)
        .distinct()
    )
    for days in chosen:
        if not limit or days < limit:  # a longer choice never outlasts the deployment's limit
            choosers = AccountSettings.objects.filter(retention_days=days).values("user_id")
            reasons.append(Q(owner_id__in=choosers, updated_at__lt=now - timedelta(days=days)))
    return reasons


def due_for_deletion(*, now: datetime) -> Q:
    """A filter on conversations: temporary chats past their time and conversations past retention.

    Each reason is its own `id IN (subquery)` over its index (expires_at,
    updated_at, the API link), so the database reads only the candidates,
    never every conversation, even when nothing is due.
    """
    due = Q()
    for reason in _reasons(now):
        due |= Q(id__in=Conversation.objects.filter(reason).values("id"))
    return due


def _may_go(conversations: QuerySet[Conversation], *, now: datetime) -> QuerySet[Conversation]:
    """Leave out what legal hold keeps and what has a reply still queued or streaming."""
    live = Message.objects.filter(conversation=OuterRef("pk"), status__in=Message.LIVE_STATUSES)
    return conversations.exclude(legal_hold(now=now)).exclude(Exists(live))


def deletable_conversations(*, now: datetime) -> QuerySet[Conversation]:
    """The due conversations that may go now: not on legal hold, no reply in progress; oldest first."""
    return _may_go(Conversation.objects.filter(due_for_deletion(now=now)), now=now).order_by(
        "updated_at", "id"
    )


def held_conversations(*, now: datetime) -> QuerySet[Conversation]:
    """The due conversations that legal hold keeps."""
    return Conversation.objects.filter(due_for_deletion(now=now)).filter(legal_hold(now=now))


def retention_apply(
    *, now: datetime | None = None, batch_size: int | None = None, dry_run: bool = False
) -> RetentionReport:
    """Delete every deletable conversation, `batch_size` per transaction; log each one and a summary."""
    now = now or timezone.now()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    report = RetentionReport(dry_run=dry_run, held=held_conversations(now=now).count())
    if dry_run:
        deletable = deletable_conversations(now=now)
        temporary = _temporary()
        report.temporary = deletable.filter(temporary).count()
        report.expired = deletable.exclude(temporary).count()
        report.messages = Message.objects.filter(conversation__in=deletable).count()
        report.conversation_ids = [str(pk) for pk in deletable.values_list("id", flat=True)[:DRY_RUN_LISTED]]
    else:
        while _delete_batch(now=now, batch_size=batch_size, report=report):
            report.batches += 1
    logger.info(report.summary())
    return report


def _temporary() -> Q:
    """Conversations never meant to stay: temporary chats, API requests not to be stored."""
    return Q(expires_at__isnull=False) | Q(api_link__stored=False)


def _delete_batch(*, now: datetime, batch_size: int, report: RetentionReport) -> bool:
    """Delete one batch; False when nothing was left to delete."""
    # Found before the transaction, so that the write lock (all of SQLite's) is held only to
    # check each of them again, row by row, and delete: a report filed or a message sent
    # a moment ago still keeps its conversation.
    candidates = list(deletable_conversations(now=now).values_list("id", flat=True)[:batch_size])
    if not candidates:
        return False
    due = Q()
    for reason in _reasons(now):
        due |= reason
    with transaction.atomic():
        batch = list(
            _may_go(Conversation.objects.filter(due, id__in=candidates), now=now)
            .annotate(temporary=Case(When(_temporary(), then=Value(True)), default=Value(False)))
            .values("id", "owner_id", "temporary", "expires_at", "updated_at")
        )
        ids = [row["id"] for row in batch]
        messages = Message.objects.filter(conversation_id__in=ids).count()
        Conversation.objects.filter(id__in=ids).delete()
    for row in batch:
        if row["expires_at"] is not None:
            reason = "temporary chat ended"
        else:
            reason = "API request not to be stored" if row["temporary"] else "past retention"
        logger.info(
            "retention deleted conversation %s of user %s (%s; last touched %s)",
            row["id"],
            row["owner_id"],
            reason,
            row["updated_at"].isoformat(),
        )
    report.temporary += sum(1 for row in batch if row["temporary"])
    report.expired += sum(1 for row in batch if not row["temporary"])
    report.messages += messages
    report.conversation_ids += [str(pk) for pk in ids]
    # None of them could go after all (all touched meanwhile): stop; the next run looks again.
    return bool(batch)
