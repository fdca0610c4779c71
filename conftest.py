"""Test-wide environment, set before Django reads its settings.

Every run gets its own Redis key prefix, so tests never see a running
`make run`'s queues, channel groups or live replies, nor another run's.
"""

import os
import uuid

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ.setdefault("REDIS_PREFIX", f"mchat-test-{uuid.uuid4().hex[:8]}")
# pytest-xdist's workers inherit it, and each adds its own suffix (tests/support/xdist_prefix.py).
# Tests send fast and in parallel from one person; the quota tests turn these back on.
os.environ.setdefault("RATE_LIMIT_MESSAGES_PER_MINUTE", "0")
os.environ.setdefault("MAX_LIVE_REPLIES_PER_USER", "0")
os.environ.setdefault("QUOTA_TOKENS_PER_DAY", "10000000")
# Consumers tested in this process run their database calls on Channels' one thread: the
# in-memory test database locks whole tables between threads. The stacks that the
# integration tests start use the sockets' pool (tests/support/stack.py).
os.environ.setdefault("SOCKET_THREADS", "0")
# Triton kernels run in Triton's interpreter on a machine without a GPU. Triton reads
# this when a kernel is defined, so it is set before anything imports one.
if not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import django  # noqa: E402

# pytest-django reads DJANGO_SETTINGS_MODULE before this file runs; set up here.
django.setup()
