"""Test-wide environment, set before Django reads its settings.

Every run gets its own Redis key prefix, so tests never see a running
`make run`'s queues, channel groups or live replies, nor another run's.
"""

import os
import uuid

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ.setdefault("REDIS_PREFIX", f"mchat-test-{uuid.uuid4().hex[:8]}")

import django  # noqa: E402

# pytest-django reads DJANGO_SETTINGS_MODULE before this file runs; set up here.
django.setup()
