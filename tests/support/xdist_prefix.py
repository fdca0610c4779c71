"""A pytest plugin (`-p`, in pyproject's `addopts`): each pytest-xdist worker gets a Redis prefix of its own.

A plugin, not the root conftest.py: a worker inherits DJANGO_SETTINGS_MODULE
from the controller, so pytest-django sets Django up before any conftest.py
runs, and a prefix changed there came too late. Both workers then shared
their channel groups, queues and live keys, and a test in one heard the
other's events (the moderators' feed is one group for everybody).
"""

from __future__ import annotations

import os

_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and "REDIS_PREFIX" in os.environ and not os.environ["REDIS_PREFIX"].endswith(f"-{_worker}"):
    os.environ["REDIS_PREFIX"] += f"-{_worker}"
