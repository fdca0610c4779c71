"""/healthz, and the worker heartbeats it reads from Redis."""

from __future__ import annotations

import pytest
from django.test import Client

from webapp import workers

pytestmark = pytest.mark.django_db


@pytest.fixture
def clean_workers():
    for record in workers.live_workers():
        workers.remove_heartbeat(record["worker"])
    yield
    for record in workers.live_workers():
        workers.remove_heartbeat(record["worker"])


def test_no_worker_means_offline_but_up(clean_workers) -> None:
    body = Client().get("/healthz").json()
    assert body["database"] == "ok" and body["redis"] == "ok"
    assert body["model"] == {"state": "offline", "model": None}
    assert body["status"] == "degraded"


def test_a_ready_worker_is_reported(clean_workers) -> None:
    workers.write_heartbeat("w1", {"state": "loading", "model": "m"})
    workers.write_heartbeat("w2", {"state": "ready", "model": "tiny", "device": "cpu", "dtype": "float32"})
    body = Client().get("/healthz").json()
    assert body["status"] == "ok"
    assert body["model"] == {"state": "ready", "model": "tiny", "workers": 2}
    assert [w["worker"] for w in body["workers"]] == ["w1", "w2"]


def test_redis_down_is_an_error(clean_workers, settings, monkeypatch) -> None:
    from webapp.chat import live

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    live.redis_client.cache_clear()
    monkeypatch.setattr(live.redis_client, "__wrapped__", live.redis_client.__wrapped__)
    try:
        response = Client().get("/healthz")
    finally:
        live.redis_client.cache_clear()
    assert response.status_code == 503
    assert response.json()["redis"].startswith("error")
