"""The Celery application's patches to kombu's Redis channel (webapp/celery.py), against the real Redis."""

from __future__ import annotations

import json
import uuid

import redis
from django.conf import settings

from webapp.celery import app


def queued(queue: str) -> list[dict]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    return [json.loads(raw) for raw in client.lrange(f"{settings.REDIS_PREFIX}:celery:{queue}", 0, -1)]


def test_messages_are_put_with_one_client_per_channel_and_all_arrive() -> None:
    queue = f"test-one-client-{uuid.uuid4().hex[:8]}"
    sent = [str(uuid.uuid4()) for _ in range(5)]
    clients = set()
    try:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            for reply_id in sent:
                app.send_task("inference.generate_reply", args=[reply_id], queue=queue, connection=connection)
                clients.add(id(channel._create_client()))
            assert len(clients) == 1
            # The channel reconnected: a new pool, so a new client on it.
            first = channel._create_client()
            channel._pool = None
            assert channel._create_client() is not first
            assert channel._create_client().connection_pool is channel.pool
            assert channel._create_client(asynchronous=True) is not channel._create_client()
        arrived = queued(queue)
        assert sorted(m["headers"]["argsrepr"] for m in arrived) == sorted(repr([i]) for i in sent)
        assert {m["headers"]["task"] for m in arrived} == {"inference.generate_reply"}
    finally:
        redis.Redis.from_url(settings.REDIS_URL).delete(f"{settings.REDIS_PREFIX}:celery:{queue}")


def test_celery_reads_every_celery_setting_of_django_once_by_its_own_name() -> None:
    ours = {name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")}
    assert ours  # the settings module defines them
    for name, value in ours.items():
        assert app.conf[name.removeprefix("CELERY_").lower()] == value, name
    assert app.conf.task_acks_late is True and app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_transport_options["global_keyprefix"] == f"{settings.REDIS_PREFIX}:celery:"
    # What Django does not set keeps Celery's default.
    assert "CELERY_TASK_SERIALIZER" not in ours and app.conf.task_serializer == "json"
