"""Login throttling: after LOGIN_FAILURES_LIMIT failed log-ins for one username from one address
within LOGIN_FAILURES_WINDOW_S, further attempts get HTTP 429 with Retry-After until the window ends.

The counters live in Redis under REDIS_PREFIX, so every Daphne process
shares them. Keyed by username *and* address: one attacker cannot lock a
person out from everywhere, and one address cannot guess many passwords of
one account. If Redis does not answer, log-ins are not throttled (and logged):
nothing else works without Redis either, and refusing every log-in would
turn an outage into a lock-out.
"""

from __future__ import annotations

import hashlib
import logging

import redis
from django.conf import settings

from webapp.chat.live import redis_client

logger = logging.getLogger(__name__)


def _key(*, username: str, address: str) -> str:
    # Hashed: the key space holds no usernames, and any text makes a valid key.
    digest = hashlib.sha256(f"{username.strip().casefold()}\x00{address}".encode()).hexdigest()[:32]
    return f"{settings.REDIS_PREFIX}:login-failures:{digest}"


def check_login_allowed(*, username: str, address: str) -> int:
    """Seconds until this username may try again from this address; 0 when it may now."""
    if settings.LOGIN_FAILURES_LIMIT <= 0:
        return 0
    key = _key(username=username, address=address)
    try:
        with redis_client().pipeline(transaction=True) as pipe:
            failures, ttl = pipe.get(key).ttl(key).execute()
    except redis.RedisError:
        logger.warning("login throttling is off: Redis does not answer", exc_info=True)
        return 0
    if int(failures or 0) < settings.LOGIN_FAILURES_LIMIT:
        return 0
    return max(int(ttl), 1)


def login_failure_record(*, username: str, address: str) -> None:
    """Count one failed log-in; the window starts with the first failure."""
    if settings.LOGIN_FAILURES_LIMIT <= 0:
        return
    key = _key(username=username, address=address)
    try:
        with redis_client().pipeline(transaction=True) as pipe:
            pipe.incr(key).expire(key, settings.LOGIN_FAILURES_WINDOW_S, nx=True).execute()
    except redis.RedisError:
        logger.warning("a failed log-in was not counted: Redis does not answer", exc_info=True)


def login_failures_clear(*, username: str, address: str) -> None:
    """A successful log-in forgets the failures before it."""
    try:
        redis_client().delete(_key(username=username, address=address))
    except redis.RedisError:
        logger.warning("could not clear the failed log-ins", exc_info=True)
