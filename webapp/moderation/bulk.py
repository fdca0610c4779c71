"""One dashboard action on one or many queue items: all of them or none, in one transaction.

Each action is one service of `webapp.moderation.services` applied per item
(dismiss, confirm), per reply (hide) or per person (warn, suspend, ban: a
person with three items selected is banned once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from webapp.moderation import services
from webapp.moderation.queue import QueueItem, items_by_keys

REASON_CHARS = 1000


@dataclass(frozen=True)
class Outcome:
    count: int
    noun: str  # "item", "reply" or "person"

    def sentence(self, verb: str) -> str:
        plural = {"item": "items", "reply": "replies", "person": "people"}[self.noun]
        return f"{verb} {self.count} {self.noun if self.count == 1 else plural}."


def items_apply(
    *,
    moderator: AbstractBaseUser,
    keys: list[str],
    action: str,
    suspend_for: timedelta | None = None,
    reason: str = "",
) -> Outcome:
    """Apply `action` to the items named by `keys`; raises UnknownItems or ModerationInputError, changing nothing."""
    with transaction.atomic():
        items = items_by_keys(keys)
        if action in ("dismiss", "confirm"):
            review = services.item_dismiss if action == "dismiss" else services.item_confirm
            for item in items:
                review(moderator=moderator, **{item.kind: item.record})
            return Outcome(len(items), "item")
        if action == "hide":
            # An item whose conversation was deleted has no reply left to hide.
            replies = {item.message.pk: item.message for item in items if item.message is not None}
            for reply in replies.values():
                services.reply_hide(moderator=moderator, message=reply)
            return Outcome(len(replies), "reply")
        if action in ("warn", "suspend", "ban"):
            people: dict[int, list[QueueItem]] = {}
            for item in items:
                people.setdefault(item.user.pk, []).append(item)
            until = timezone.now() + suspend_for if action == "suspend" and suspend_for else None
            for person_items in people.values():
                services.sanction_apply(
                    moderator=moderator,
                    user=person_items[0].user,
                    kind=action,
                    until=until,
                    reason=reason or _default_reason(person_items),
                    message_ids=list(dict.fromkeys(item.message.pk for item in person_items if item.message)),
                )
            return Outcome(len(people), "person")
    raise ValueError(f"unknown action {action!r}")


def _default_reason(items: list[QueueItem]) -> str:
    """What the moderator acted on, for the audit log and the person's notice, when they wrote nothing."""
    parts = []
    for item in items:
        record = item.record
        what = ", ".join(record.categories) or record.action if item.kind == "event" else record.reason
        parts.append(f"{item.key} ({what})")
    return ("From the moderation queue: " + "; ".join(parts))[:REASON_CHARS]
