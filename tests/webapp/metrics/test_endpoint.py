"""/metrics: who may scrape it (token, loopback), and what the Redis-backed series say."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.webapp.test_health import clean_workers  # noqa: F401 - a fixture
from webapp import workers
from webapp.metrics.collectors import worker_families

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-metrics-token"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.usefixtures("clean_workers")
def test_loopback_without_a_token_is_answered() -> None:
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = samples(response.content.decode())
    assert found[("mchat_redis_up", ())] == 1
    assert ("mchat_queue_length", ()) in found


@pytest.mark.parametrize("address", ["10.0.0.7", "192.168.1.20", "::ffff:8.8.8.8", "not-an-address", ""])
def test_without_a_token_other_machines_are_refused(address: str) -> None:
    response = Client(REMOTE_ADDR=address).get("/metrics")
    assert response.status_code == 403
    assert b"METRICS_TOKEN" in response.content


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"])
def test_without_a_token_a_proxied_request_is_refused_even_from_loopback(header: str) -> None:
    response = Client(REMOTE_ADDR="127.0.0.1", **{header: "203.0.113.9"}).get("/metrics")
    assert response.status_code == 403


def test_with_a_token_set_a_scrape_needs_it(settings) -> None:
    settings.METRICS_TOKEN = TOKEN
    loopback = Client(REMOTE_ADDR="127.0.0.1")
    missing = loopback.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert loopback.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert loopback.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert loopback.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert loopback.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 403
    remote = Client(REMOTE_ADDR="203.0.113.9")
    assert remote.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert remote.get("/metrics", HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200


def test_only_get(settings) -> None:
    response = Client(REMOTE_ADDR="127.0.0.1").post("/metrics")
    assert response.status_code == 405


@pytest.mark.usefixtures("clean_workers")
def test_worker_heartbeats_become_gauges() -> None:
    workers.write_heartbeat("w1", {"state": "ready", "active": 3, "waiting": 1, "max_batch": 4})
    workers.write_heartbeat("w2", {"state": "loading", "max_batch": 4})
    found = samples(Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode())
    assert found[("mchat_workers", (("state", "ready"),))] == 1
    assert found[("mchat_workers", (("state", "loading"),))] == 1
    assert found[("mchat_engine_active_replies", (("worker", "w1"),))] == 3
    assert found[("mchat_engine_waiting_replies", (("worker", "w1"),))] == 1
    assert found[("mchat_engine_batch_occupancy", (("worker", "w1"),))] == 0.75
    assert ("mchat_engine_active_replies", (("worker", "w2"),)) not in found
    assert 0 <= found[("mchat_worker_heartbeat_age_seconds", (("worker", "w2"),))] < 5


def test_kv_cache_fields_are_read_when_a_heartbeat_has_them() -> None:
    record = {"worker": "w", "state": "ready", "updated_at": 100.0, "active": 1, "max_batch": 2}
    record.update(kv_blocks_used=30, kv_blocks_total=120, prefix_hit_rate=0.25)
    found = {
        (sample.name, sample.labels.get("worker")): sample.value
        for family in worker_families([record], now=104.0)
        for sample in family.samples
    }
    assert found[("mchat_engine_kv_blocks_used", "w")] == 30
    assert found[("mchat_engine_kv_blocks_free", "w")] == 90
    assert found[("mchat_engine_kv_cache_usage", "w")] == 0.25
    assert found[("mchat_engine_prefix_cache_hit_rate", "w")] == 0.25
    assert found[("mchat_worker_heartbeat_age_seconds", "w")] == 4.0


def test_an_engine_without_a_paged_cache_has_no_cache_series() -> None:
    record = {"worker": "w", "state": "ready", "updated_at": 100.0, "active": 1, "max_batch": 2}
    record.update(kv_blocks_used=0, kv_blocks_total=0, prefix_hit_rate=0.0)
    names = {sample.name for family in worker_families([record], now=104.0) for sample in family.samples}
    assert "mchat_engine_active_replies" in names
    assert not {name for name in names if "kv" in name or "prefix" in name}


def test_redis_down_is_a_series_not_a_failure(monkeypatch) -> None:
    def down() -> list:
        raise ConnectionError("gone")

    monkeypatch.setattr(workers, "live_workers", down)
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    assert response.status_code == 200
    assert samples(response.content.decode())[("mchat_redis_up", ())] == 0
