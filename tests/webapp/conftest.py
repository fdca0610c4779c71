"""Fixtures of the web tests."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings


@pytest.fixture(autouse=True)
def _no_login_failures_from_earlier_tests() -> None:
    """Failed log-ins count per username in Redis for the whole run; each test starts with none.

    Many tests refuse people named the same (a banned carol, a pending carol):
    without this, the fifth refusal in one run throttled an unrelated test's log-in.
    """
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{settings.REDIS_PREFIX}:login-failures:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
