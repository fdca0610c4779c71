"""The registry of inference workers: each writes a heartbeat to Redis, pages and /healthz read them.

A heartbeat expires on its own, so a worker that died drops out of the list
within heartbeat_ttl_s() without anybody cleaning up.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings

from webapp import metrics
from webapp.chat.live import redis_client


def heartbeat_interval_s() -> int:
    """Seconds between two beats of a worker (WORKER_HEARTBEAT_S)."""
    return settings.WORKER_HEARTBEAT_S


def heartbeat_ttl_s() -> int:
    """How long a heartbeat lives: three beats, so one late beat is not taken for a death."""
    return 3 * settings.WORKER_HEARTBEAT_S


def _key(worker: str) -> str:
    return f"{settings.REDIS_PREFIX}:worker:{worker}"


def write_heartbeat(worker: str, status: dict[str, Any]) -> None:
    """Publish one worker's state: model, device, dtype, state (loading/ready/failed), busy, replies."""
    record = {**status, "worker": worker, "updated_at": time.time()}
    redis_client().set(_key(worker), json.dumps(record), ex=heartbeat_ttl_s())
    metrics.heartbeat_written()


# What an engine's load may carry beyond active/waiting (a paged KV cache, a prefix cache).
def remove_heartbeat(worker: str) -> None:
    redis_client().delete(_key(worker))


def queue_length() -> int:
    """Reply jobs waiting in the Redis queue that no worker has taken yet."""
    # Kombu's Redis transport keeps a queue as a list named after it, under our prefix.
    return int(redis_client().llen(f"{settings.REDIS_PREFIX}:celery:inference"))


def live_workers() -> list[dict[str, Any]]:
    """Every worker that sent a heartbeat recently, sorted by name."""
    client = redis_client()
    keys = sorted(client.scan_iter(match=_key("*"), count=100))
    records = client.mget(keys) if keys else []
    return [json.loads(record) for record in records if record]


def model_summary(workers: list[dict[str, Any]]) -> dict[str, Any]:
    """What the page shows: which model answers, and whether it is loading, ready or busy.

    `busy` means every ready worker's batch is full: a new reply waits in the queue.
    """
    ready = [w for w in workers if w.get("state") == "ready"]
    shown = ready[0] if ready else (workers[0] if workers else None)
    if shown is None:
        return {"state": "offline", "model": None}
    state = shown.get("state")
    if ready and all(w.get("active", 0) >= w.get("max_batch", 1) for w in ready):
        state = "busy"
    return {
        "state": state,
        "model": shown.get("model"),
        "workers": len(workers),
        "active": sum(w.get("active", 0) for w in ready),
        "capacity": sum(w.get("max_batch", 0) for w in ready),
        # The paged KV caches of the ready workers: blocks in use, and the prefix cache's hit rate
        # (the share of prompt tokens it served, averaged over the workers that have a cache).
        "waiting": sum(w.get("waiting", 0) for w in ready),
        "kv_blocks_used": sum(w.get("kv_blocks_used", 0) for w in ready),
        "kv_blocks_total": sum(w.get("kv_blocks_total", 0) for w in ready),
        "prefix_hit_rate": _mean([w["prefix_hit_rate"] for w in ready if w.get("kv_blocks_total")]),
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None
