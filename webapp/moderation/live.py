"""The moderators' live feed: one Channels group every open dashboard joins.

Published only after the transaction that made the change commits (callers
use `transaction.on_commit`), so no moderator hears of a rolled-back row.
Events are small dicts with a `kind`:
- "event": a new ModerationEvent (id, action, stage, hook, categories, user, created_at);
- "report": a new Report (id, reason, message, reporter, created_at);
- "action": a moderator's action, as its audit entry (id, action, target_type, target_id, moderator, detail).
"""

from __future__ import annotations

from typing import Any

from webapp.chat import live

GROUP = "moderators"
MESSAGE_TYPE = "moderation.item"  # the consumer's handler: moderation_item


def notify_moderators(event: dict[str, Any]) -> None:
    """Send `event` to every moderator's open dashboard."""
    # The chat publisher: one PUBLISH from the calling thread, safe from any (see webapp.chat.live).
    live.group_send(GROUP, {"type": MESSAGE_TYPE, "event": event})
