"""The Grafana dashboard in docs/grafana uses only series /metrics exports, and every series is on it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from webapp.metrics.collectors import worker_families

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana" / "mistral-chat.json"
# Histogram and counter sample suffixes: a query names the sample, the family is the name without it.
SUFFIXES = ("_bucket", "_count", "_sum", "_total")
# Read from Redis at scrape time (collectors.RedisStateCollector) besides the per-worker families.
REDIS_SERIES = {"mchat_redis_up", "mchat_queue_length"}


def exported() -> set[str]:
    record = {"worker": "w", "state": "ready", "updated_at": 0, "active": 1, "waiting": 0, "max_batch": 2}
    record.update(kv_blocks_used=1, kv_blocks_total=2, prefix_hit_rate=0.5)
    process = {family.name for family in REGISTRY.collect() if family.name.startswith("mchat_")}
    return process | {family.name for family in worker_families([record], now=0)} | REDIS_SERIES


def used() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\bmchat_\w+", target["expr"]):
                for suffix in SUFFIXES:
                    if name.endswith(suffix) and name[: -len(suffix)] in exported():
                        name = name[: -len(suffix)]
                        break
                names.add(name)
    return names


def test_the_dashboard_uses_only_exported_series() -> None:
    assert used() - exported() == set()


def test_every_exported_series_is_on_the_dashboard() -> None:
    assert exported() - used() == set()
