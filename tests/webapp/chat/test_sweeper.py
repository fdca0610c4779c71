"""The sweeper: a streaming reply no live worker lists ends `failed`; nothing else is touched.

On the real Redis (a private key prefix per test), the real database; the
end-to-end case with a SIGKILLed worker is in tests/integration/test_worker_failures.py.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from webapp import workers
from webapp.chat import live, quotas, reply_jobs, sweeper
from webapp.chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def private_prefix(settings):
    settings.REDIS_PREFIX = f"mchat-sweep-{uuid.uuid4().hex[:8]}"
    yield
    client = live.redis_client()
    for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}:*"):
        client.delete(key)


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        live, "publish", lambda conversation_id, event: sent.append((str(conversation_id), event))
    )
    return sent


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    monkeypatch.setattr(sweeper, "reply_enqueue", lambda *, reply_id: sent.append(str(reply_id)))
    return sent


def make_reply(status: str, *, age_s: float) -> Message:
    owner = get_user_model().objects.create_user(username=f"u{uuid.uuid4().hex[:8]}", password="x" * 12)
    conversation = Conversation.objects.create(owner=owner)
    Message.objects.create(conversation=conversation, role="user", content="Hi")
    reply = Message.objects.create(conversation=conversation, role="assistant", status=status, params={})
    Message.objects.filter(id=reply.id).update(updated_at=timezone.now() - timedelta(seconds=age_s))
    return reply


def status_of(reply: Message) -> tuple[str, str, str]:
    reply.refresh_from_db()
    return reply.status, reply.content, reply.error


def test_an_unlisted_streaming_reply_fails_with_its_text_and_a_done(published) -> None:
    orphan = make_reply("streaming", age_s=workers.heartbeat_ttl_s() + 5)
    live.record_delta(orphan.id, 1, "Half a")
    live.record_delta(orphan.id, 2, " sentence")

    assert sweeper.replies_fail_orphaned() == [str(orphan.id)]

    assert status_of(orphan) == ("failed", "Half a sentence", sweeper.ORPHAN_ERROR)
    ((conversation_id, done),) = published
    assert conversation_id == str(orphan.conversation_id)
    assert done["type"] == "done" and done["status"] == "failed" and done["content"] == "Half a sentence"
    assert live.read_snapshot(orphan.id) == (0, ""), "the live text is cleared with the end"


def test_listed_recent_and_ended_replies_are_left_alone(published) -> None:
    listed = make_reply("streaming", age_s=600)
    recent = make_reply("streaming", age_s=1)  # claimed within a heartbeat lifetime: maybe not listed yet
    queued = make_reply("queued", age_s=600)
    complete = make_reply("complete", age_s=600)
    workers.write_heartbeat("w1", {"state": "ready", "replies": [str(listed.id)]})

    assert sweeper.replies_fail_orphaned() == []

    assert [status_of(r)[0] for r in (listed, recent, queued, complete)] == [
        "streaming",
        "streaming",
        "queued",
        "complete",
    ]
    assert published == []


def test_the_worker_finishing_a_swept_reply_changes_nothing(published) -> None:
    orphan = make_reply("streaming", age_s=600)
    sweeper.replies_fail_orphaned()
    # The worker was only slow, not dead: its late end is dropped, not written over the failure.
    late = reply_jobs.reply_finish(
        message_id=orphan.id, status="complete", content="A late answer", stats={}, model_name="t"
    )
    assert late is None
    assert status_of(orphan)[:2] == ("failed", "")
    assert [event["status"] for _, event in published] == ["failed"]


def test_a_reply_is_claimed_once_and_never_after_it_ended(published) -> None:
    reply = make_reply("queued", age_s=0)
    assert reply_jobs.reply_claim(message_id=reply.id) is not None
    assert reply_jobs.reply_claim(message_id=reply.id) is None, "a duplicate delivery claimed it again"
    reply_jobs.reply_finish(message_id=reply.id, status="complete", content="Once", stats={}, model_name="t")
    assert reply_jobs.reply_claim(message_id=reply.id) is None
    assert status_of(reply)[:2] == ("complete", "Once")


def test_one_sweep_per_interval_and_queued_replies_enqueued_once_per_redis_run(published, enqueued) -> None:
    queued = make_reply("queued", age_s=600)
    orphan = make_reply("streaming", age_s=600)

    assert sweeper.sweep(owner="a") == [str(orphan.id)]
    assert enqueued == [str(queued.id)]
    # Another worker (or the web) within the interval: the lock says somebody just swept.
    assert sweeper.sweep(owner="b") == []
    live.redis_client().delete(f"{sweeper._key('lock')}")
    assert sweeper.sweep(owner="b") == []
    assert enqueued == [str(queued.id)], "the queue was refilled twice in one Redis run"


def test_nothing_is_swept_while_redis_is_younger_than_a_heartbeat(published, monkeypatch) -> None:
    orphan = make_reply("streaming", age_s=600)
    client = live.redis_client()
    real_info = client.info
    monkeypatch.setattr(
        type(client), "info", lambda self, section=None: {**real_info(section), "uptime_in_seconds": 3}
    )
    assert sweeper.sweep(owner="a") == []
    assert status_of(orphan)[0] == "streaming"


def test_a_finished_reply_is_stored_whole_and_announced_with_its_stats(published) -> None:
    reply = make_reply("streaming", age_s=60)
    conversation = Conversation.objects.get(pk=reply.conversation_id)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    before = Conversation.objects.get(pk=conversation.pk).updated_at
    owner_id = conversation.owner_id
    used = quotas.tokens_used_today(user_id=owner_id)
    stats = {"prompt_tokens": 21, "completion_tokens": 8, "ttft_ms": 12.5, "tokens_per_s": 99.0}

    ended = reply_jobs.reply_finish(
        message_id=str(reply.id), status="complete", content="Eight words.", stats=stats, model_name="m"
    )

    stored = Message.objects.get(pk=reply.id)
    assert ended is not None and ended.pk == reply.id
    # What comes back is the row as stored, every field of it.
    assert {f.attname: getattr(ended, f.attname) for f in Message._meta.concrete_fields} == {
        f.attname: getattr(stored, f.attname) for f in Message._meta.concrete_fields
    }
    assert (stored.status, stored.content, stored.model_name, stored.error) == (
        "complete",
        "Eight words.",
        "m",
        "",
    )
    assert (
        stored.stats() == {**stats, "queue_ms": None} and stored.params == {} and stored.role == "assistant"
    )
    assert stored.updated_at > timezone.now() - timedelta(seconds=30)
    assert Conversation.objects.get(pk=conversation.pk).updated_at > before
    assert quotas.tokens_used_today(user_id=owner_id) == used + 29
    assert published == [
        (str(conversation.pk), {"type": "done", "message_id": str(reply.id), "status": "complete",
                                "content": "Eight words.", "stats": {**stats, "queue_ms": None}}),
    ]  # fmt: skip


def test_finishing_what_is_not_a_message_id_writes_nothing(published) -> None:
    reply = make_reply("streaming", age_s=60)
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        assert (
            reply_jobs.reply_finish(message_id=bad, status="failed", content="", stats={}, model_name="")
            is None
        )
    assert status_of(reply) == ("streaming", "", "") and published == []
