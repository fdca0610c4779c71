"""The worker's side of a reply: claim it, stream its text, store it.

Called by `inference.tasks` from the worker's threads; like every write, the
events go out only after the transaction commits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django import db
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from inference.moderation.base import Verdict
from inference.params import SamplingParams
from inference.reply_loop import Emission
from inference.streaming import STAT_FIELDS as REPLY_STAT_FIELDS
from webapp import metrics, prepared
from webapp.chat import events, live, quotas
from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import path_turns
from webapp.chat.services import system_prompt_for
from webapp.moderation.services import moderation_record
from webapp.prepared import Param, PreparedQuery

# Queued replies told their new place each time the queue moves; the rest
# hear at their next move within reach.
QUEUE_UPDATES = 100
# A worker tells queued replies their place at most this often (QueueAnnouncer).
ANNOUNCE_INTERVAL_S = 0.25

logger = logging.getLogger(__name__)


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
    through, on every database (SQLite ignores `select_for_update`). Its
    three queries are compiled once: they are on every reply's first-token path.
    """
    try:
        found = _QUEUED_REPLY.rows(message_id=UUID(str(message_id)))
    except ValueError:  # not a message id at all
        return None
    if not found:
        return None
    reply_id, conversation_id, parent_id, stored, created_at, owner_id, system_prompt, guardrail = found[0]
    queue_ms = (timezone.now() - created_at).total_seconds() * 1000.0
    if not _claim(reply_id, queue_ms=queue_ms):
        return None
    transaction.on_commit(queue_announcer.moved)  # at once, unless a caller's transaction is open
    metrics.reply_claimed(queue_ms=queue_ms)
    stored = dict(stored)
    raw = bool(stored.pop("raw", False))
    stop = tuple(stored.pop("stop", ()))
    return ReplyJob(
        message_id=str(reply_id),
        conversation_id=str(conversation_id),
        user_id=str(owner_id),
        messages=path_turns(conversation_id=conversation_id, parent_id=parent_id),
        system_prompt=system_prompt_for(Conversation(system_prompt=system_prompt, guardrail=guardrail)),
        params=SamplingParams(**stored),
        raw=raw,
        stop=stop,
    )


_QUEUED_REPLY = PreparedQuery(
    lambda _: Message.objects.filter(
        id=Param("message_id", Message._meta.pk), role=Message.Role.ASSISTANT, status=Message.Status.QUEUED
    ).values_list(
        "id",
        "conversation_id",
        "parent_id",
        "params",
        "created_at",
        "conversation__owner_id",
        "conversation__system_prompt",
        "conversation__guardrail",
    )
)


def _claim(reply_id: UUID, *, queue_ms: float) -> bool:
    """Queued to streaming, if still queued: one statement, atomic by itself (no transaction around it)."""
    claimed = Message(id=reply_id, status=Message.Status.STREAMING, queue_ms=queue_ms)
    guard = {"status": [Message.Status.QUEUED]}
    return prepared.update(claimed, ["status", "queue_ms", "updated_at"], where=guard) == 1


def announce_queue_positions() -> None:
    """Tell every queued reply (the first QUEUE_UPDATES) its place, after the queue moved."""
    # One round trip for all: a burst of claims each announcing to every reply
    # still queued was a publish per pair, and held up the first tokens.
    live.publish_many(
        [
            (conversation_id, events.start_event(reply_id, position))
            for position, (reply_id, conversation_id) in enumerate(_QUEUE_HEAD.rows())
        ]
    )


_QUEUE_HEAD = PreparedQuery(
    lambda _: (
        Message.objects.filter(status=Message.Status.QUEUED)
        .order_by("created_at")
        .values_list("id", "conversation_id")[:QUEUE_UPDATES]
    )
)


class QueueAnnouncer:
    """Runs `announce` after the queue moves, never twice at once: moves that come while an
    announcement runs are folded into one more after it.

    A burst of N claims each announcing to every reply still queued was
    O(N²) `start` events for Daphne to forward while the first tokens were
    due; folded, a burst costs a few announcements, and the last one still
    starts after the last move, so every queued reply hears its final place.

    Once `start`ed (the worker does), announcements run on a thread of their
    own, at most one every `interval_s`: a claim no longer spends its first
    token's time telling the others their place (0.1 ms a queued reply), and
    a burst whose replies are all claimed within the interval announces
    nothing (each `start` event already carried its place).
    """

    def __init__(self, announce: Callable[[], None], *, interval_s: float = ANNOUNCE_INTERVAL_S) -> None:
        self._announce = announce
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self._moves = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Announce from a daemon thread from now on."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="queue-announcer", daemon=True)
                self._thread.start()

    def moved(self) -> None:
        if self._thread is not None:
            self._moves.set()
            return
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

    def _run(self) -> None:
        while True:
            self._moves.wait()
            time.sleep(self._interval_s)  # the moves of a burst fold into one announcement
            self._moves.clear()
            try:
                self._announce()
            except Exception:  # Redis or the database blinked: the next move announces again
                logger.warning("could not announce queue positions", exc_info=True)
            finally:
                db.connection.close()  # back to the pool while the queue is still


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
    conditional UPDATE; its statements are compiled once, as every reply of
    a burst ends at about the same time.
    """
    try:
        ended = Message(
            id=UUID(str(message_id)), status=status, content=content, error=error, model_name=model_name
        )
    except ValueError:  # not a message id at all
        return None
    for name in REPLY_STAT_FIELDS:
        setattr(ended, name, stats.get(name))
    with transaction.atomic():
        written = prepared.update(ended, _FINISHED_FIELDS, where={"status": Message.LIVE_STATUSES})
        if not written:
            return None
        *values, owner_id = _ENDED_REPLY.rows(message_id=ended.id)[0]
        reply = Message.from_db(DEFAULT_DB_ALIAS, _REPLY_COLUMNS, values)
        prepared.update(Conversation(id=reply.conversation_id), ["updated_at"])
        recorded = moderation_record(reply=reply, verdicts=verdicts, original=original)
        quotas.record_tokens(
            user_id=owner_id, tokens=(reply.prompt_tokens or 0) + (reply.completion_tokens or 0)
        )

        def announce() -> None:
            metrics.reply_finished(status=status, stats=stats)
            for event in recorded:
                live.publish(reply.conversation_id, events.moderation_event(event))
            live.publish(reply.conversation_id, events.done_event(reply))
            live.clear_reply(reply.id)

        transaction.on_commit(announce)
    return reply


_FINISHED_FIELDS = ["status", "content", "error", "model_name", *REPLY_STAT_FIELDS, "updated_at"]
_REPLY_COLUMNS = [field.attname for field in Message._meta.concrete_fields]
_ENDED_REPLY = PreparedQuery(
    lambda _: Message.objects.filter(id=Param("message_id", Message._meta.pk)).values_list(
        *_REPLY_COLUMNS, "conversation__owner_id"
    )
)


def reply_delta(*, conversation_id: str, message_id: str, seq: int, text: str) -> None:
    """Record and publish one piece of a reply's text (no database write), as the reply loop does a step's."""
    live.publish_step([Emission(str(message_id), str(conversation_id), seq, text)])
