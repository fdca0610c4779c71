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


# What the summary says of workers whose engine has no paged cache (the scripted one).
NO_CACHE = {"waiting": 0, "kv_blocks_used": 0, "kv_blocks_total": 0, "prefix_hit_rate": None}


def ready(active: int, max_batch: int = 4) -> dict:
    return {
        "state": "ready",
        "model": "tiny",
        "device": "cpu",
        "dtype": "float32",
        "active": active,
        "max_batch": max_batch,
    }


def test_a_ready_worker_is_reported(clean_workers) -> None:
    workers.write_heartbeat("w1", {"state": "loading", "model": "m"})
    workers.write_heartbeat("w2", ready(active=1))
    body = Client().get("/healthz").json()
    assert body["status"] == "ok" and body["queue_length"] == 0
    assert body["model"] == {
        "state": "ready",
        "model": "tiny",
        "workers": 2,
        "active": 1,
        "capacity": 4,
        **NO_CACHE,
    }
    assert [w["worker"] for w in body["workers"]] == ["w1", "w2"]


def test_busy_when_every_ready_batch_is_full(clean_workers) -> None:
    workers.write_heartbeat("w1", ready(active=4))
    workers.write_heartbeat("w2", ready(active=2))
    assert Client().get("/healthz").json()["model"]["state"] == "ready"
    workers.write_heartbeat("w2", ready(active=4))
    assert Client().get("/healthz").json()["model"] == {
        "state": "busy",
        "model": "tiny",
        "workers": 2,
        "active": 8,
        "capacity": 8,
        **NO_CACHE,
    }


def test_the_kv_caches_of_ready_workers_are_added_up(clean_workers) -> None:
    cache = {"kv_blocks_used": 30, "kv_blocks_total": 100, "kv_block_size": 16, "waiting": 2}
    workers.write_heartbeat("w1", {**ready(active=1), **cache, "prefix_hit_rate": 0.5})
    workers.write_heartbeat("w2", {**ready(active=1), **cache, "prefix_hit_rate": 0.7})
    workers.write_heartbeat("w3", {"state": "loading", "model": "tiny"})
    model = Client().get("/healthz").json()["model"]
    assert (model["kv_blocks_used"], model["kv_blocks_total"], model["waiting"]) == (60, 200, 4)
    assert model["prefix_hit_rate"] == pytest.approx(0.6)


def test_queue_length_counts_jobs_no_worker_took(clean_workers, settings) -> None:
    from webapp.celery import app

    queue = f"{settings.REDIS_PREFIX}:celery:inference"
    try:
        for _ in range(3):
            app.send_task("inference.generate_reply", args=["nobody"], queue="inference")
        assert Client().get("/healthz").json()["queue_length"] == 3
    finally:
        workers.redis_client().delete(queue)


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
