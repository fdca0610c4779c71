"""The series move where the product acts: pages, sockets, replies, moderation, heartbeats.

In-process (no PROMETHEUS_MULTIPROC_DIR): each test reads the default
registry before and after, so the order the tests run in does not matter.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client import REGISTRY

from inference.moderation.base import Action, Stage, Verdict
from webapp import metrics, workers
from webapp.chat import reply_jobs
from webapp.chat.models import Conversation, Message
from webapp.chat.routing import websocket_urlpatterns
from webapp.metrics.views import forget_dead_processes


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
def test_http_requests_are_counted_by_route_not_path() -> None:
    before = value("mchat_http_requests_total", method="GET", route="healthz", status="200")
    timed = value("mchat_http_request_duration_seconds_count", method="GET", route="healthz")
    missing = value("mchat_http_requests_total", method="GET", route="unmatched", status="404")
    static = value("mchat_http_requests_total", method="GET", route="static", status="200")
    client = Client()
    client.get("/healthz")
    client.get(f"/no-such-page-{uuid.uuid4().hex}")
    assert client.get("/static/css/app.css").status_code == 200  # WhiteNoise: before any URL pattern
    assert value("mchat_http_requests_total", method="GET", route="static", status="200") == static + 1
    assert value("mchat_http_requests_total", method="GET", route="healthz", status="200") == before + 1
    assert value("mchat_http_request_duration_seconds_count", method="GET", route="healthz") == timed + 1
    assert value("mchat_http_requests_total", method="GET", route="unmatched", status="404") == missing + 1


@pytest.mark.django_db
def test_a_conversation_route_is_one_label_for_every_conversation(alice) -> None:
    client = Client()
    client.force_login(alice)
    route = "c/<str:conversation_id>/"
    before = value("mchat_http_requests_total", method="GET", route=route, status="200")
    for _ in range(2):
        conversation = Conversation.objects.create(owner=alice)
        assert client.get(f"/c/{conversation.id}/").status_code == 200
    assert value("mchat_http_requests_total", method="GET", route=route, status="200") == before + 2


@pytest.fixture
def alice():
    return get_user_model().objects.create_user(username=f"alice-{uuid.uuid4().hex[:6]}", password="x" * 12)


@pytest.mark.django_db(transaction=True)
async def test_sockets_opened_refused_closed_and_their_events_timed() -> None:
    application = URLRouter(websocket_urlpatterns)
    owner, intruder = await database_sync_to_async(_users)()
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=owner)
    opened, refused = (
        value("mchat_socket_connects_total", outcome="open"),
        value("mchat_socket_connects_total", outcome="4403"),
    )
    open_before = value("mchat_sockets_open")
    stops = value("mchat_socket_event_duration_seconds_count", type="stop", outcome="error")
    unknown = value("mchat_socket_event_duration_seconds_count", type="unknown", outcome="error")

    socket = WebsocketCommunicator(application, f"/ws/conversations/{conversation.id}/")
    socket.scope["user"] = owner
    assert (await socket.connect())[0]
    await socket.send_to(text_data=json.dumps({"type": "stop"}))
    await socket.send_to(text_data=json.dumps({"type": "x" * 5000}))  # refused: an unknown type
    # Each is refused with an error: once both came, connect and both events were handled.
    assert json.loads(await socket.receive_from(timeout=5))["code"] == "nothing_to_stop"
    assert json.loads(await socket.receive_from(timeout=5))["code"] == "unknown_type"
    assert value("mchat_socket_connects_total", outcome="open") == opened + 1
    assert value("mchat_sockets_open") == open_before + 1
    assert value("mchat_socket_event_duration_seconds_count", type="stop", outcome="error") == stops + 1
    assert value("mchat_socket_event_duration_seconds_count", type="unknown", outcome="error") == unknown + 1
    await socket.disconnect()
    assert value("mchat_sockets_open") == open_before

    stranger = WebsocketCommunicator(application, f"/ws/conversations/{conversation.id}/")
    stranger.scope["user"] = intruder
    await stranger.connect()
    assert (await stranger.receive_output(timeout=5))["code"] == 4403
    await stranger.disconnect()
    assert value("mchat_socket_connects_total", outcome="4403") == refused + 1
    assert value("mchat_sockets_open") == open_before, "a refused socket is never counted open"


def _users() -> tuple:
    make = get_user_model().objects.create_user
    return make(username=f"o-{uuid.uuid4().hex[:6]}", password="x" * 12), make(
        username=f"i-{uuid.uuid4().hex[:6]}", password="x" * 12
    )


@pytest.mark.django_db
def test_a_reply_moves_queue_wait_status_tokens_ttft_speed_and_moderation(
    alice, django_capture_on_commit_callbacks
) -> None:
    conversation = Conversation.objects.create(owner=alice)
    Message.objects.create(conversation=conversation, role="user", content="Hi")
    reply = Message.objects.create(conversation=conversation, role="assistant", status="queued", params={})
    names = [
        ("mchat_reply_queue_wait_seconds_count", {}),
        ("mchat_replies_total", {"status": "complete"}),
        ("mchat_tokens_generated_total", {}),
        ("mchat_prompt_tokens_total", {}),
        ("mchat_reply_ttft_seconds_count", {}),
        ("mchat_reply_ttft_seconds_sum", {}),
        ("mchat_reply_tokens_per_second_count", {}),
        ("mchat_moderation_events_total", {"hook": "rules", "action": "flag"}),
    ]
    before = [value(name, **labels) for name, labels in names]
    with django_capture_on_commit_callbacks(execute=True):
        assert reply_jobs.reply_claim(message_id=reply.id) is not None
    verdict = Verdict(Action.FLAG, ("violence",), hook="rules", stage=Stage.OUTPUT)
    stats = {"prompt_tokens": 12, "completion_tokens": 30, "ttft_ms": 250.0, "tokens_per_s": 40.0}
    with django_capture_on_commit_callbacks(execute=True):
        reply_jobs.reply_finish(
            message_id=reply.id,
            status="complete",
            content="x",
            stats=stats,
            model_name="t",
            verdicts=[verdict],
        )
    after = [value(name, **labels) for name, labels in names]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 30, 12, 1, 0.25, 1, 1]


@pytest.mark.django_db
def test_a_reply_ended_twice_is_counted_once(alice, django_capture_on_commit_callbacks) -> None:
    conversation = Conversation.objects.create(owner=alice)
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming", params={})
    before = value("mchat_replies_total", status="failed")
    for _ in range(2):  # the sweeper, then the late worker: the second write is refused
        with django_capture_on_commit_callbacks(execute=True):
            reply_jobs.reply_finish(message_id=reply.id, status="failed", content="", stats={}, model_name="")
    assert value("mchat_replies_total", status="failed") == before + 1


def test_heartbeats_are_counted() -> None:
    before = value("mchat_worker_heartbeats_total")
    workers.write_heartbeat("metrics-test", {"state": "loading"})
    workers.remove_heartbeat("metrics-test")
    assert value("mchat_worker_heartbeats_total") == before + 1


def test_socket_event_labels_are_bounded() -> None:
    before = value("mchat_socket_event_duration_seconds_count", type="unknown", outcome="ok")
    with metrics.socket_event({"a": "dict"}):
        pass
    with metrics.socket_event("DROP TABLE"):
        pass
    assert value("mchat_socket_event_duration_seconds_count", type="unknown", outcome="ok") == before + 2


def test_live_gauges_of_dead_processes_are_forgotten(tmp_path: Path) -> None:
    dead_pid = 2**22 + 17  # above Linux's pid_max: never a running process
    dead = tmp_path / f"gauge_livesum_{dead_pid}.db"
    mine = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    counter = tmp_path / f"counter_{dead_pid}.db"
    for path in (dead, mine, counter):
        path.write_bytes(b"")
    forget_dead_processes(str(tmp_path))
    assert not dead.exists(), "a dead process's open sockets still counted"
    assert mine.exists() and counter.exists(), "live gauges and counters are kept"
