"""Series read from Redis at scrape time: the queue, the workers' heartbeats and their engines' load.

Each worker's heartbeat (webapp/workers.py) carries its engine's load, so
these figures cover every worker on every machine that shares the Redis,
not only the processes whose files this machine holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from webapp import workers
from webapp.metrics import PREFIX

logger = logging.getLogger(__name__)

# Heartbeat field -> (series, help). Fields a heartbeat lacks (an older
# worker, an engine without a paged KV cache) are left out of the scrape.
ENGINE_FIELDS = {
    "active": ("engine_active_replies", "Replies in the engine's batch now."),
    "waiting": ("engine_waiting_replies", "Replies submitted to the engine, not yet in its batch."),
    "max_batch": ("engine_max_batch", "Replies the engine decodes together at most."),
}
# The paged KV cache's fields, read only from an engine that has one (`kv_blocks_total` > 0).
CACHE_FIELDS = {
    "kv_blocks_used": ("engine_kv_blocks_used", "KV cache blocks in use."),
    "kv_blocks_free": ("engine_kv_blocks_free", "KV cache blocks free."),
    "prefix_hit_rate": ("engine_prefix_cache_hit_rate", "Share of prompt tokens found in the prefix cache."),
}


class RedisStateCollector(Collector):
    """The state Redis holds, as gauges; `redis_up` says whether it answered."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(f"{PREFIX}_redis_up", "Whether Redis answered this scrape.")
        try:
            records = workers.live_workers()
            queued = workers.queue_length()
        except Exception:  # a scrape reports Redis down; it never fails for it
            logger.warning("metrics: Redis did not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queue = GaugeMetricFamily(f"{PREFIX}_queue_length", "Reply jobs waiting for a worker.")
        queue.add_metric([], queued)
        yield queue
        yield from worker_families(records, now=time.time())


def worker_families(records: list[dict[str, Any]], *, now: float) -> Iterator[GaugeMetricFamily]:
    """Per-worker gauges from heartbeat records, and the count of workers per state."""
    states = GaugeMetricFamily(
        f"{PREFIX}_workers", "Workers with a live heartbeat, by state.", labels=["state"]
    )
    counts: dict[str, int] = {"loading": 0, "ready": 0, "failed": 0}
    for record in records:
        state = str(record.get("state", "unknown"))
        counts[state] = counts.get(state, 0) + 1
    for state, count in sorted(counts.items()):
        states.add_metric([state], count)
    yield states
    age = GaugeMetricFamily(
        f"{PREFIX}_worker_heartbeat_age_seconds",
        "Seconds since the worker's last heartbeat.",
        labels=["worker"],
    )
    occupancy = GaugeMetricFamily(
        f"{PREFIX}_engine_batch_occupancy", "Active replies over the batch size (0 to 1).", labels=["worker"]
    )
    kv_use = GaugeMetricFamily(
        f"{PREFIX}_engine_kv_cache_usage", "KV cache blocks used over all blocks (0 to 1).", labels=["worker"]
    )
    fields = {
        key: GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["worker"])
        for key, (name, text) in (ENGINE_FIELDS | CACHE_FIELDS).items()
    }
    for record in records:
        worker = str(record.get("worker", "?"))
        age.add_metric([worker], max(0.0, now - float(record.get("updated_at", now))))
        values = {key: record.get(key) for key in ENGINE_FIELDS}
        used, total = record.get("kv_blocks_used"), record.get("kv_blocks_total")
        if isinstance(used, int | float) and isinstance(total, int | float) and total > 0:
            values |= {key: record.get(key) for key in CACHE_FIELDS} | {"kv_blocks_free": total - used}
            kv_use.add_metric([worker], used / total)
        for key, value in values.items():
            if isinstance(value, int | float):
                fields[key].add_metric([worker], value)
        if record.get("max_batch") and "active" in record:
            occupancy.add_metric([worker], record["active"] / record["max_batch"])
    yield age
    yield occupancy
    yield kv_use
    yield from fields.values()
