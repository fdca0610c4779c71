"""Rate limits and quotas per user, shared by the page and the API (docs/protocol.md, docs/api.md).

Three limits, each off when it is 0:
- MAX_LIVE_REPLIES_PER_USER replies queued or streaming at once, over all
  of a person's conversations (`busy`);
- tokens a day: prompt plus completion tokens per UTC day, counted by the
  worker as replies end (`quota_exceeded`);
- messages a minute: replies asked for in any 60 s (`rate_limited`).
The last two are the person's (webapp.accounts.access: their groups', else
QUOTA_TOKENS_PER_DAY and RATE_LIMIT_MESSAGES_PER_MINUTE), read with the live
replies in the one query of a send's checks (`selectors.send_state`).

The counters live in Redis under REDIS_PREFIX, so every Daphne process and
every worker share them. A refusal is a ChatInputError with `retry_after`.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid

from django.conf import settings

# A module import: services imports this module too, and uses it only at call time.
from webapp.chat import services
from webapp.chat.live import redis_client
from webapp.chat.selectors import SendState

WINDOW_S = 60.0
# How soon a client refused as `busy` may try again: replies take seconds.
BUSY_RETRY_S = 2


def _key(*parts: object) -> str:
    return ":".join([settings.REDIS_PREFIX, "quota", *map(str, parts)])


def _day(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d")


def _seconds_to_midnight(now: float) -> int:
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()
    return max(1, math.ceil(midnight - now))


def check_reply_allowed(*, user_id: object, state: SendState) -> None:
    """Refuse a new reply for this user, or count it: last of a send's checks (`services.lock_idle`)."""
    now = time.time()
    limits = state.limits
    if settings.MAX_LIVE_REPLIES_PER_USER and state.live_replies >= settings.MAX_LIVE_REPLIES_PER_USER:
        raise services.ChatInputError(
            "busy",
            "Another reply of yours is still being written.",
            retry_after=BUSY_RETRY_S,
        )
    if limits.tokens_per_day and tokens_used_today(user_id=user_id, now=now) >= limits.tokens_per_day:
        raise services.ChatInputError(
            "quota_exceeded",
            f"You have used your {limits.tokens_per_day:,} tokens for today (UTC).",
            retry_after=_seconds_to_midnight(now),
        )
    if limits.messages_per_minute:
        _take_rate_slot(user_id, now, limits.messages_per_minute)


def _take_rate_slot(user_id: object, now: float, limit: int) -> None:
    """A sliding 60 s window: add this request, and take it back if it is one too many."""
    key, member = _key("rate", user_id), f"{now:.6f}:{uuid.uuid4().hex[:8]}"
    with redis_client().pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, 0, now - WINDOW_S)
        pipe.zadd(key, {member: now})
        pipe.zcard(key)
        pipe.zrange(key, 0, 0, withscores=True)
        pipe.expire(key, int(WINDOW_S) + 1)
        _, _, count, oldest, _ = pipe.execute()
    if count > limit:
        redis_client().zrem(key, member)
        retry_after = max(1, math.ceil(oldest[0][1] + WINDOW_S - now)) if oldest else int(WINDOW_S)
        raise services.ChatInputError(
            "rate_limited", f"At most {limit} messages a minute.", retry_after=retry_after
        )


def tokens_used_today(*, user_id: object, now: float | None = None) -> int:
    now = time.time() if now is None else now
    return int(redis_client().get(_key("tokens", user_id, _day(now))) or 0)


def record_tokens(*, user_id: object, tokens: int) -> None:
    """Add a finished reply's tokens to its owner's count for today (called by the worker)."""
    if tokens <= 0:
        return
    key = _key("tokens", user_id, _day(time.time()))
    with redis_client().pipeline(transaction=True) as pipe:
        pipe.incrby(key, tokens)
        pipe.expire(key, 2 * 86400)
        pipe.execute()
