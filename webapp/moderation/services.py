"""Writes of the moderation app: recording what the hooks decided about a reply."""

from __future__ import annotations

from collections.abc import Sequence

from inference.moderation.base import Stage, Verdict
from webapp.chat.models import Message
from webapp.moderation.models import ModerationEvent

EXCERPT_CHARS = 4000


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
            score=verdict.score,
            reason=verdict.reason,
            error=verdict.error,
            latency_ms=verdict.latency_ms,
            excerpt=(question if verdict.stage == Stage.INPUT else original)[:EXCERPT_CHARS],
        )
        for verdict in verdicts
    ]
    return ModerationEvent.objects.bulk_create(rows)
