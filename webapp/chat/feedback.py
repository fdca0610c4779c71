"""Feedback on replies: 👍 or 👎, with optional reasons and a comment (docs/feedback.md).

`check_feedback` validates and raises ChatInputError; `feedback_set` writes
(or, with no rating, takes the feedback back). `feedback_message` is the one
way to load the reply a person rates: a message they cannot see is
FeedbackNotFound, whatever the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser

from webapp.chat.models import Feedback, Message
from webapp.chat.selectors import ConversationForbidden, ConversationNotFound, access_conversation, visible
from webapp.chat.services import ChatInputError

MAX_COMMENT_CHARS = 1000
# The reasons the page offers with each rating (any known reason is accepted with either).
REASONS_OFFERED = {
    Feedback.Rating.UP: ("accurate", "helpful", "well_written", "other"),
    Feedback.Rating.DOWN: ("incorrect", "unhelpful", "incomplete", "unsafe", "other"),
}


def reasons_for_page() -> dict[str, list[list[str]]]:
    """What the page's "Why?" form lists per rating: [value, label] pairs."""
    labels = dict(Feedback.Reason.choices)
    return {
        str(rating): [[value, str(labels[value])] for value in offered]
        for rating, offered in REASONS_OFFERED.items()
    }


class FeedbackNotFound(Exception):
    """No reply this person can see has that id (another's, a hidden one, a malformed id)."""


def feedback_message(user: AbstractBaseUser, conversation_id: object, message_id: object) -> Message:
    try:
        conversation = access_conversation(user, str(conversation_id))
        message = visible(conversation.messages.filter(id=UUID(str(message_id)))).first()
    except (ConversationNotFound, ConversationForbidden, ValueError):
        message = None
    if message is None:
        raise FeedbackNotFound(str(message_id))
    return message


def check_feedback(*, rating: object, reasons: object, comment: object) -> tuple[str | None, list[str], str]:
    """A rating (`up`, `down`, or None to take it back), reasons from Feedback.Reason, a comment."""
    if rating is not None and rating not in Feedback.Rating.values:
        raise ChatInputError("invalid_rating", 'rating is "up", "down" or null.')
    if reasons is None:
        reasons = []
    if not isinstance(reasons, list) or not all(isinstance(reason, str) for reason in reasons):
        raise ChatInputError("invalid_reasons", "reasons must be a list of strings.")
    unknown = sorted(set(reasons) - set(Feedback.Reason.values))
    if unknown:
        raise ChatInputError(
            "invalid_reasons",
            f"Unknown reason {unknown[0][:40]!r}; allowed: {', '.join(Feedback.Reason.values)}.",
        )
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or "\x00" in comment or not _encodable(comment):
        raise ChatInputError("invalid_comment", "The comment must be text without NUL characters.")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise ChatInputError("comment_too_long", f"Keep the comment under {MAX_COMMENT_CHARS} characters.")
    return rating, list(dict.fromkeys(reasons)), comment


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def feedback_set(
    *, user: AbstractBaseUser, message: Message, rating: str | None, reasons: list[str], comment: str
) -> Feedback | None:
    """Store (or change) the person's feedback on a reply; with no rating, delete it. Checked input only."""
    if message.role != Message.Role.ASSISTANT:
        raise ChatInputError("not_a_reply", "Only the assistant's replies can be rated.")
    if rating is None:
        Feedback.objects.filter(message=message, user=user).delete()
        return None
    feedback, _ = Feedback.objects.update_or_create(
        message=message, user=user, defaults={"rating": rating, "reasons": reasons, "comment": comment}
    )
    return feedback


def feedback_fields(feedback: Feedback | None) -> dict[str, Any]:
    """How the feedback endpoint and the page describe it."""
    if feedback is None:
        return {"rating": None, "reasons": [], "comment": ""}
    return {"rating": feedback.rating, "reasons": list(feedback.reasons), "comment": feedback.comment}


def ratings_of(user: AbstractBaseUser, messages: Iterable[Message]) -> dict[UUID, str]:
    """The person's ratings of these messages, by message id; one query."""
    ids = [message.id for message in messages]
    return dict(Feedback.objects.filter(user=user, message_id__in=ids).values_list("message_id", "rating"))
