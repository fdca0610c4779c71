"""The Celery application shared by the web process (which only enqueues) and the inference worker."""

import functools
import os
from collections.abc import Iterator, Mapping
from typing import Any

import redis
from celery import Celery
from kombu.transport import redis as redis_transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")


class _DjangoCeleryConfig(Mapping):
    """Django's CELERY_* settings as a plain mapping, read when Celery first looks.

    Celery reads its configuration at every `send_task`, each key in two
    spellings in each of its maps; through Django's lazy settings object
    those lookups cost about a third of a `send_task`, on every send's
    first-token path. The settings are read once, as Celery reads a
    configuration module.
    """

    @functools.cached_property
    def _values(self) -> dict[str, Any]:
        from django.conf import settings

        return {name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")}

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


app = Celery("webapp")
app.config_from_object(_DjangoCeleryConfig(), namespace="CELERY")
# The web process never imports inference.tasks (it would pull in torch): it
# enqueues by task name. Only a worker started with `-A webapp` and
# `--include inference.tasks` registers the task.


def _connparams_of_a_live_connection(connparams):  # type: ignore[no-untyped-def]
    """Kombu's Redis channel, guarded: a broker that went away must not end the worker.

    With late acks a running reply's job is unacknowledged. When Redis drops
    the connection, Celery 5.7 closes the channel, which tries to put that job
    back, and later the finished task acks it, both through the closed
    channel, whose transport is gone: AttributeError ('NoneType' object has no
    attribute 'hostname' / 'client'), which Celery takes as unrecoverable, and
    the worker exits instead of reconnecting. Raised as the connection error
    it is, Celery logs it and carries on. Nothing is lost: the job stays in
    Redis's unacked set (restored after the visibility timeout; a redelivered
    reply job does nothing), or Redis lost it with everything else and the
    sweeper (webapp.chat.sweeper) re-enqueues queued replies.
    """

    @functools.wraps(connparams)
    def guarded(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection of this channel is closed")
        return connparams(self, *args, **kwargs)

    return guarded


redis_transport.Channel._connparams = _connparams_of_a_live_connection(redis_transport.Channel._connparams)


def _one_client_per_channel(create_client):  # type: ignore[no-untyped-def]
    """Kombu's Redis channel, putting a message with one client instead of a new one each time.

    Kombu builds a redis-py client for every message it puts, and redis-py fills
    a table of some 170 reply callbacks for each: 0.4 of the 0.9 ms of CPU a
    `send_task` cost, on every send's first-token path. A client is
    thread-safe and holds no connection of its own (its pool does), so one per
    channel serves; a new pool (the channel reconnected) gets a new client.
    """

    @functools.wraps(create_client)
    def reused(self, asynchronous=False):  # type: ignore[no-untyped-def]
        if asynchronous:
            return create_client(self, asynchronous)
        client = self.__dict__.get("_sync_client")
        if client is None or client.connection_pool is not self.pool:
            client = self.__dict__["_sync_client"] = create_client(self, False)
        return client

    return reused


redis_transport.Channel._create_client = _one_client_per_channel(redis_transport.Channel._create_client)
