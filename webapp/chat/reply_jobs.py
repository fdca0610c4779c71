"""The worker's side of a reply: claim it, stream its text, store it.

Called by `inference.tasks` from the worker's threads; like every write, the
events go out only after the transaction commits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from inference.moderation.base import Verdict
from inference.params import SamplingParams
from inference.reply_loop import Emission
from inference.streaming import STAT_FIELDS as REPLY_STAT_FIELDS
from webapp import metrics
from webapp.chat import events, live, quotas
from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import prompt_history
from webapp.chat.services import system_prompt_for
from webapp.moderation.services import moderation_record

# Queued replies told their new place each time the queue moves; the rest
# hear at their next move within reach.
QUEUE_UPDATES = 100


@dataclass(frozen=True)
class ReplyJob:
    """Everything the worker needs to write one reply, detached from the ORM."""

    message_id: str
    conversation_id: str
    user_id: str
    messages: list[dict[str, str]]
    system_prompt: str | None
    params: SamplingParams
    # The API's completions: the one user message is the whole prompt, no chat template.
    raw: bool = False
    # The API's `stop` strings: the reply ends before the first one.
    stop: tuple[str, ...] = ()


def reply_claim(*, message_id: UUID | str) -> ReplyJob | None:
    """Move a queued reply to `streaming` and hand back its job; None if it is not queued.

    A reply already claimed (a redelivered or duplicated task) or already
    ended is left alone: the conditional UPDATE lets exactly one claimant
    through, on every database (SQLite ignores `select_for_update`).
    """
    reply = (
        Message.objects.select_related("conversation")
        .filter(id=message_id, role=Message.Role.ASSISTANT, status=Message.Status.QUEUED)
        .first()
    )
    if reply is None:
        return None
    queue_ms = (timezone.now() - reply.created_at).total_seconds() * 1000.0
    # One statement, atomic by itself: no transaction around it (two round trips fewer).
    claimed = Message.objects.filter(id=reply.id, status=Message.Status.QUEUED).update(
        status=Message.Status.STREAMING,
        queue_ms=queue_ms,
        updated_at=timezone.now(),
    )
    if not claimed:
        return None
    transaction.on_commit(queue_announcer.moved)  # at once, unless a caller's transaction is open
    metrics.reply_claimed(queue_ms=queue_ms)
    stored = dict(reply.params)
    raw = bool(stored.pop("raw", False))
    stop = tuple(stored.pop("stop", ()))
    return ReplyJob(
        message_id=str(reply.id),
        conversation_id=str(reply.conversation_id),
        user_id=str(reply.conversation.owner_id),
        messages=prompt_history(reply),
        system_prompt=system_prompt_for(reply.conversation),
        params=SamplingParams(**stored),
        raw=raw,
        stop=stop,
    )


def announce_queue_positions() -> None:
    """Tell every queued reply (the first QUEUE_UPDATES) its place, after the queue moved."""
    queued = Message.objects.filter(status=Message.Status.QUEUED).order_by("created_at")
    # One round trip for all: a burst of claims each announcing to every reply
    # still queued was a publish per pair, and held up the first tokens.
    live.publish_many(
        [
            (conversation_id, events.start_event(reply_id, position))
            for position, (reply_id, conversation_id) in enumerate(
                queued.values_list("id", "conversation_id")[:QUEUE_UPDATES]
            )
        ]
    )


class QueueAnnouncer:
    """Runs `announce` after the queue moves, never twice at once: moves that come while an
    announcement runs are folded into one more after it.

    A burst of N claims each announcing to every reply still queued was
    O(N²) `start` events for Daphne to forward while the first tokens were
    due; folded, a burst costs a few announcements, and the last one still
    starts after the last move, so every queued reply hears its final place.
    """

    def __init__(self, announce: Callable[[], None]) -> None:
        self._announce = announce
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def moved(self) -> None:
        with self._lock:
            if self._running:
                self._again = True  # the thread announcing now goes round once more
                return
            self._running = True
        try:
            while True:
                self._announce()
                with self._lock:
                    if not self._again:
                        self._running = False
                        return
                    self._again = False
        except BaseException:
            with self._lock:
                self._running = self._again = False
            raise


queue_announcer = QueueAnnouncer(lambda: announce_queue_positions())


def reply_finish(
    *,
    message_id: UUID | str,
    status: str,
    content: str,
    stats: dict[str, Any],
    model_name: str,
    error: str = "",
    verdicts: Sequence[Verdict] = (),
    original: str = "",
) -> Message | None:
    """Store a reply's final text, status, stats and moderation events; then publish them and `done`.

    Only a live reply is written: one that already ended (the sweeper
    failed it when its worker looked dead, or a duplicate task finished it)
    is left as it is, and None comes back. Like the claim, the guard is a
    conditional UPDATE.
    """
    fields: dict[str, Any] = {name: stats.get(name) for name in REPLY_STAT_FIELDS}
    with transaction.atomic():
        written = Message.objects.filter(id=message_id, status__in=Message.LIVE_STATUSES).update(
            status=status,
            content=content,
            error=error,
            model_name=model_name,
            updated_at=timezone.now(),
            **fields,
        )
        if not written:
            return None
        reply = Message.objects.get(id=message_id)
        Conversation.objects.filter(pk=reply.conversation_id).update(updated_at=timezone.now())
        recorded = moderation_record(reply=reply, verdicts=verdicts, original=original)
        quotas.record_tokens(
            user_id=reply.conversation.owner_id,
            tokens=(reply.prompt_tokens or 0) + (reply.completion_tokens or 0),
        )

        def announce() -> None:
            metrics.reply_finished(status=status, stats=stats)
            for event in recorded:
                live.publish(reply.conversation_id, events.moderation_event(event))
            live.publish(reply.conversation_id, events.done_event(reply))
            live.clear_reply(reply.id)

        transaction.on_commit(announce)
    return reply


def reply_delta(*, conversation_id: str, message_id: str, seq: int, text: str) -> None:
    """Record and publish one piece of a reply's text (no database write), as the reply loop does a step's."""
    live.publish_step([Emission(str(message_id), str(conversation_id), seq, text)])
