"""Replies whose worker died: found by the heartbeats, ended `failed`, never left `streaming`.

Each worker lists the replies it is writing in its heartbeat (webapp.workers),
which expires three beats (WORKER_HEARTBEAT_S each) after the worker's last one. A `streaming`
reply that no live heartbeat lists, claimed more than a heartbeat lifetime
ago, has lost its worker (SIGKILL, out of memory, the machine gone): the
sweep ends it `failed` with the text it had streamed, and publishes `done`
after commit like any other end, so the page shows it with its Retry button.

Every worker sweeps from its heartbeat thread, and `/healthz` (polled by
every open page) sweeps too, so a reply is ended even when no worker is left;
a Redis lock lets one sweep run per interval across the deployment.

After a Redis restart the heartbeats are gone until each worker beats again,
so nothing is swept until Redis has been up one heartbeat lifetime; and the
queued replies, whose jobs a Redis without persistence lost, are enqueued
again (a duplicate job does nothing: the claim lets one through).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from webapp import workers
from webapp.chat import live, reply_jobs
from webapp.chat.models import Message
from webapp.chat.services import reply_enqueue

logger = logging.getLogger(__name__)

ORPHAN_ERROR = "The worker writing this reply stopped (it crashed or was killed); retry to write it again."


def _key(name: str) -> str:
    return f"{settings.REDIS_PREFIX}:sweeper:{name}"


def sweep(*, owner: str) -> list[str]:
    """One sweep if nobody swept within one heartbeat interval; the ids of the replies it failed."""
    client = live.redis_client()
    if not client.set(_key("lock"), owner, nx=True, ex=max(1, workers.heartbeat_interval_s())):
        return []
    server = client.info("server")
    if int(server["uptime_in_seconds"]) < workers.heartbeat_ttl_s():
        return []  # heartbeats are still being rewritten after a restart
    if client.set(_key("requeued"), server["run_id"], nx=True):
        replies_requeue()
    return replies_fail_orphaned()


def replies_fail_orphaned() -> list[str]:
    """End `failed` every streaming reply that no live worker lists; the ids it ended."""
    running = {reply for worker in workers.live_workers() for reply in worker.get("replies", ())}
    # A reply claimed within one heartbeat lifetime may not be listed yet.
    cutoff = timezone.now() - timedelta(seconds=workers.heartbeat_ttl_s())
    orphaned = (
        Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
        .exclude(id__in=running)
        .values_list("id", flat=True)
    )
    return [str(reply_id) for reply_id in orphaned if reply_fail_orphaned(message_id=str(reply_id))]


def reply_fail_orphaned(*, message_id: str) -> bool:
    """End one orphaned reply `failed`, keeping what it had streamed; False if it ended meanwhile."""
    _, text = live.read_snapshot(message_id)
    # The worker's own end: one guarded write, then `done` after commit, so a late finish
    # from a worker that was only slow cannot overwrite this, nor this a finish.
    ended = reply_jobs.reply_finish(
        message_id=message_id,
        status=Message.Status.FAILED,
        content=text,
        stats={},
        model_name="",
        error=ORPHAN_ERROR,
    )
    if ended is not None:
        logger.warning("reply %s failed: its worker stopped", message_id)
    return ended is not None


def replies_requeue() -> int:
    """Enqueue every queued reply's job again (after Redis came back empty); how many."""
    queued = list(Message.objects.filter(status=Message.Status.QUEUED).values_list("id", flat=True))
    for reply_id in queued:
        reply_enqueue(reply_id=reply_id)
    if queued:
        logger.warning("enqueued %d queued replies again after a Redis restart", len(queued))
    return len(queued)
