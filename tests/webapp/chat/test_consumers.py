"""The conversation websocket, driven with Channels' WebsocketCommunicator on the real Redis layer."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from inference.reply_loop import Emission
from webapp.chat import live, reply_jobs, services
from webapp.chat.models import Conversation, Message
from webapp.chat.routing import websocket_urlpatterns

pytestmark = [pytest.mark.django_db(transaction=True)]

application = URLRouter(websocket_urlpatterns)


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the reply jobs sent to Celery instead of sending them: no worker runs here."""
    sent: list[str] = []
    monkeypatch.setattr(
        services.celery_app, "send_task", lambda name, args, queue: sent.append(args[0]) if queue else None
    )
    return sent


@database_sync_to_async
def make_user(name: str = "alice"):
    return get_user_model().objects.create_user(username=f"{name}-{uuid.uuid4().hex[:6]}", password="x" * 12)


@database_sync_to_async
def make_conversation(owner, **fields) -> Conversation:
    return Conversation.objects.create(owner=owner, **fields)


def communicator(conversation_id: object, user=None) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}/")
    if user is not None:
        comm.scope["user"] = user
    return comm


async def open_socket(conversation: Conversation, user) -> WebsocketCommunicator:
    comm = communicator(conversation.id, user)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def receive(comm: WebsocketCommunicator) -> dict:
    return json.loads(await comm.receive_from(timeout=5))


# --- closes -----------------------------------------------------------------


async def test_no_session_closes_4401() -> None:
    from django.contrib.auth.models import AnonymousUser

    comm = communicator(uuid.uuid4(), AnonymousUser())
    connected, _ = await comm.connect()
    assert connected  # accepted first, so the code reaches the client
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await comm.disconnect()


async def test_somebody_elses_conversation_closes_4403() -> None:
    owner, intruder = await make_user("owner"), await make_user("intruder")
    conversation = await make_conversation(owner)
    comm = communicator(conversation.id, intruder)
    await comm.connect()
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    await comm.disconnect()


@pytest.mark.parametrize("conversation_id", [uuid.uuid4(), "not-a-uuid"])
async def test_unknown_conversation_closes_4404(conversation_id: object) -> None:
    user = await make_user()
    comm = communicator(conversation_id, user)
    await comm.connect()
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}
    await comm.disconnect()


# --- bad input: an error event, the socket stays open, nothing is stored ----

BAD_FRAMES = [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_event"),
    ('{"content": "hi"}', "invalid_event"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "send", "content": ""}', "empty_message"),
    ('{"type": "send", "content": "   \\n\\t "}', "empty_message"),
    ('{"type": "send", "content": 42}', "invalid_content"),
    ('{"type": "send"}', "invalid_content"),
    ('{"type": "send", "content": "a\\u0000b"}', "invalid_content"),
    ('{"type": "send", "content": "hi", "params": "hot"}', "invalid_params"),
    ('{"type": "send", "content": "hi", "params": {"temperature": "hot"}}', "invalid_params"),
    ('{"type": "send", "content": "hi", "params": {"top_k": 1.5}}', "invalid_params"),
    ('{"type": "send", "content": "hi", "params": {"max_tokens": true}}', "invalid_params"),
    ('{"type": "send", "content": "hi", "params": {"temperature": 9}}', "invalid_params"),
    ('{"type": "send", "content": "hi", "params": {"colour": 1}}', "invalid_params"),
    ('{"type": "stop"}', "nothing_to_stop"),
    ('{"type": "regenerate"}', "nothing_to_regenerate"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_bad_input_gets_an_error_and_stores_nothing(frame: str, code: str, enqueued: list[str]) -> None:
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(text_data=frame)
    event = await receive(comm)
    assert event["type"] == "error" and event["code"] == code and event["message"]
    # Still open: a good frame afterwards is served.
    await comm.send_to(text_data=json.dumps({"type": "send", "content": "hello"}))
    assert (await receive(comm))["type"] == "message"
    await comm.disconnect()
    assert len(enqueued) == 1
    assert await database_sync_to_async(Message.objects.filter(conversation=conversation).count)() == 2


async def test_message_over_the_limit_is_refused(settings, enqueued: list[str]) -> None:
    settings.MAX_MESSAGE_CHARS = 100
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(text_data=json.dumps({"type": "send", "content": "x" * 101}))
    event = await receive(comm)
    assert event["code"] == "message_too_long" and "100" in event["message"]
    await comm.send_to(text_data=json.dumps({"type": "send", "content": "x" * 100}))
    assert (await receive(comm))["type"] == "message"
    await comm.disconnect()


async def test_binary_and_huge_frames_are_refused(settings) -> None:
    settings.MAX_MESSAGE_CHARS = settings.MAX_SYSTEM_PROMPT_CHARS = 100
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(bytes_data=b"\x00\x01")
    assert (await receive(comm))["code"] == "invalid_frame"
    await comm.send_to(text_data=json.dumps({"type": "send", "content": "y" * 10_000}))
    assert (await receive(comm))["code"] == "frame_too_large"
    await comm.disconnect()


async def test_the_largest_valid_frame_is_read_and_stored(settings, enqueued: list[str]) -> None:
    # MAX_MESSAGE_CHARS (20,000) characters, each escaped as a surrogate pair: 12 bytes apiece.
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    frame = json.dumps(
        {"type": "send", "content": "\U0001f600" * settings.MAX_MESSAGE_CHARS, "params": {"seed": 1}}
    )
    assert len(frame) > settings.MAX_MESSAGE_CHARS * 12
    await comm.send_to(text_data=frame)
    assert (await receive(comm))["type"] == "message"
    await comm.disconnect()
    assert len(enqueued) == 1


async def test_a_prompt_that_cannot_fit_the_context_is_refused(settings) -> None:
    settings.CONTEXT_LIMIT = 64
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(
        text_data=json.dumps({"type": "send", "content": "word " * 80, "params": {"max_tokens": 10}})
    )
    event = await receive(comm)
    assert event["code"] == "context_overflow"
    await comm.disconnect()
    assert await database_sync_to_async(Message.objects.count)() == 0


# --- sending, echo, start ------------------------------------------------------


async def test_send_stores_echoes_and_enqueues(enqueued: list[str]) -> None:
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(
        text_data=json.dumps({"type": "send", "content": "Bonjour </s> [INST]", "params": {"seed": 7}})
    )
    echoed = await receive(comm)
    assert echoed["type"] == "message"
    assert echoed["message"]["role"] == "user" and echoed["message"]["content"] == "Bonjour </s> [INST]"
    start = await receive(comm)
    assert start["type"] == "start" and start["queue_position"] >= 0
    reply = await database_sync_to_async(Message.objects.get)(id=start["message_id"])
    assert reply.status == "queued" and reply.params["seed"] == 7
    assert enqueued == [start["message_id"]]
    # A second send while the reply is queued is refused.
    await comm.send_to(text_data=json.dumps({"type": "send", "content": "again"}))
    assert (await receive(comm))["code"] == "reply_in_progress"
    await comm.disconnect()


async def test_two_sockets_hear_the_same_events(enqueued: list[str]) -> None:
    user = await make_user()
    conversation = await make_conversation(user)
    first, second = await open_socket(conversation, user), await open_socket(conversation, user)
    await first.send_to(text_data=json.dumps({"type": "send", "content": "hi"}))
    for comm in (first, second):
        assert (await receive(comm))["type"] == "message"
        assert (await receive(comm))["type"] == "start"
    await first.disconnect()
    await second.disconnect()


async def test_events_are_forwarded_without_a_hop_to_the_sync_thread(
    monkeypatch: pytest.MonkeyPatch, enqueued: list[str]
) -> None:
    """Channels' dispatch closes stale connections on its sync thread before every message (a
    thread hop a token event); ours does not, as its database calls close their own."""
    import channels.consumer

    hops: list[None] = []

    async def counted() -> None:
        hops.append(None)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(text_data=json.dumps({"type": "send", "content": "hi"}))
    start = [await receive(comm), await receive(comm)][1]
    for seq in (1, 2, 3):
        await database_sync_to_async(reply_jobs.reply_delta)(
            conversation_id=str(conversation.id), message_id=start["message_id"], seq=seq, text=f"t{seq} "
        )
    assert [(await receive(comm))["seq"] for _ in range(3)] == [1, 2, 3]
    assert hops == []
    await comm.disconnect()


# --- snapshot and the live tail --------------------------------------------------


async def test_snapshot_then_only_newer_tokens(enqueued: list[str]) -> None:
    user = await make_user()
    conversation = await make_conversation(user)
    reply = await database_sync_to_async(Message.objects.create)(
        conversation=conversation, role="assistant", status="streaming"
    )
    await database_sync_to_async(reply_jobs.reply_delta)(
        conversation_id=str(conversation.id), message_id=str(reply.id), seq=1, text="Hel"
    )
    await database_sync_to_async(reply_jobs.reply_delta)(
        conversation_id=str(conversation.id), message_id=str(reply.id), seq=2, text="lo"
    )
    comm = await open_socket(conversation, user)
    snapshot = await receive(comm)
    assert snapshot == {
        "type": "snapshot",
        "message_id": str(reply.id),
        "seq": 2,
        "text": "Hello",
        # Where the reply sits in the tree: a first message here, with no other version.
        "parent_id": None,
        "sibling_index": 0,
        "sibling_count": 1,
        "sibling_ids": [str(reply.id)],
    }
    # A token the snapshot already holds is not sent again; a newer one is.
    await database_sync_to_async(live.publish)(
        conversation.id, {"type": "token", "message_id": str(reply.id), "seq": 2, "text": "lo"}
    )
    await database_sync_to_async(reply_jobs.reply_delta)(
        conversation_id=str(conversation.id), message_id=str(reply.id), seq=3, text=" world"
    )
    assert await receive(comm) == {"type": "token", "message_id": str(reply.id), "seq": 3, "text": " world"}
    await database_sync_to_async(reply_jobs.reply_finish)(
        message_id=reply.id,
        status="complete",
        content="Hello world",
        stats={"prompt_tokens": 5, "completion_tokens": 3, "ttft_ms": 1.0, "tokens_per_s": 2.0},
        model_name="test",
    )
    done = await receive(comm)
    assert done["type"] == "done" and done["content"] == "Hello world" and done["status"] == "complete"
    assert done["stats"] == {
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "ttft_ms": 1.0,
        "tokens_per_s": 2.0,
        "queue_ms": None,
    }
    assert live.read_snapshot(reply.id) == (0, "")
    await comm.disconnect()


async def test_a_step_published_at_once_reaches_each_conversation_and_its_snapshot(
    enqueued: list[str],
) -> None:
    user = await make_user()
    first, second = await make_conversation(user), await make_conversation(user)
    replies = [
        await database_sync_to_async(Message.objects.create)(
            conversation=c, role="assistant", status="streaming"
        )
        for c in (first, second)
    ]
    sockets = [await open_socket(first, user), await open_socket(second, user)]
    for comm in sockets:
        assert (await receive(comm))["type"] == "snapshot"
    await database_sync_to_async(live.publish_step)(
        [
            Emission(str(replies[0].id), str(first.id), 1, "One "),
            Emission(str(replies[1].id), str(second.id), 1, "Two "),
            Emission(str(replies[0].id), str(first.id), 2, "more"),
        ]
    )
    assert [await receive(sockets[0]), await receive(sockets[0])] == [
        {"type": "token", "message_id": str(replies[0].id), "seq": 1, "text": "One "},
        {"type": "token", "message_id": str(replies[0].id), "seq": 2, "text": "more"},
    ]
    assert await receive(sockets[1]) == {
        "type": "token",
        "message_id": str(replies[1].id),
        "seq": 1,
        "text": "Two ",
    }
    await sockets[1].receive_nothing(timeout=0.2)
    assert live.read_snapshot(replies[0].id) == (2, "One more")
    assert live.read_snapshot(replies[1].id) == (1, "Two ")
    for comm in sockets:
        await comm.disconnect()


async def test_a_stop_is_pushed_to_the_listening_workers(enqueued: list[str]) -> None:
    heard: list[str] = []
    stopping = threading.Event()
    listener = threading.Thread(target=live.listen_for_stops, args=(heard.append, stopping), daemon=True)
    listener.start()
    try:
        user = await make_user()
        conversation = await make_conversation(user)
        comm = await open_socket(conversation, user)
        await comm.send_to(text_data=json.dumps({"type": "send", "content": "go"}))
        await receive(comm)
        reply_id = (await receive(comm))["message_id"]
        await asyncio.sleep(0.3)  # the listener has subscribed
        await comm.send_to(text_data=json.dumps({"type": "stop"}))
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.05)
        assert heard == [reply_id]
        assert live.stops_requested([reply_id, str(uuid.uuid4())]) == {reply_id}
        await comm.disconnect()
    finally:
        stopping.set()
        listener.join(timeout=5)


async def test_stop_sets_the_flag_the_worker_polls(enqueued: list[str]) -> None:
    user = await make_user()
    conversation = await make_conversation(user)
    comm = await open_socket(conversation, user)
    await comm.send_to(text_data=json.dumps({"type": "send", "content": "go"}))
    await receive(comm)
    reply_id = (await receive(comm))["message_id"]
    assert not live.stop_requested(reply_id)
    await comm.send_to(text_data=json.dumps({"type": "stop"}))
    await comm.receive_nothing(timeout=0.3)
    assert live.stop_requested(reply_id)
    await comm.disconnect()


async def test_queued_replies_hear_their_new_place_when_the_queue_moves(enqueued: list[str]) -> None:
    user = await make_user()
    conversations = [await make_conversation(user) for _ in range(3)]
    sockets = [await open_socket(c, user) for c in conversations]
    replies = []
    for comm in sockets:
        await comm.send_to(text_data=json.dumps({"type": "send", "content": "hi"}))
        assert (await receive(comm))["type"] == "message"
        start = await receive(comm)
        replies.append(start["message_id"])
    assert [s for s in enqueued] == replies

    job = await database_sync_to_async(reply_jobs.reply_claim)(message_id=replies[0])
    assert job is not None and job.messages == [{"role": "user", "content": "hi"}]
    moved = [await receive(comm) for comm in sockets[1:]]
    assert moved == [
        {"type": "start", "message_id": replies[1], "queue_position": 0},
        {"type": "start", "message_id": replies[2], "queue_position": 1},
    ]
    await sockets[0].receive_nothing(timeout=0.2)
    claimed = await database_sync_to_async(Message.objects.get)(id=replies[0])
    assert claimed.status == "streaming" and claimed.queue_ms is not None and claimed.queue_ms >= 0
    # A second delivery of the same job claims nothing.
    assert await database_sync_to_async(reply_jobs.reply_claim)(message_id=replies[0]) is None
    for comm in sockets:
        await comm.disconnect()
