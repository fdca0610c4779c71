"""Live state of replies in progress, kept in Redis so any process can serve any socket.

Three things live here and nowhere else:
- the text streamed so far and its last `seq`, for the `snapshot` a socket
  gets when it connects mid-reply;
- the stop flag a socket sets, pushed to the workers on a pub/sub channel
  (and kept as a key they can poll, in case a push is lost);
- the publishers that put events on a conversation's channel-layer group,
  each a straight PUBLISH from the calling thread: one event at a time, or
  a whole engine step's `token` events, with their live state, in one Redis
  round trip (`publish_step`).

Nothing in this module keeps per-conversation state in process memory:
several Daphne processes and several workers share one Redis.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import redis
from channels.layers import channel_layers
from django.conf import settings

from webapp.chat import events

if TYPE_CHECKING:  # the web process imports no more of the worker than it must
    from inference.reply_loop import Emission

logger = logging.getLogger(__name__)

# Live keys outlive any real reply but not a crashed worker's leftovers.
LIVE_TTL_S = 6 * 3600


def group_name(conversation_id: UUID | str) -> str:
    """The channel-layer group of one conversation: every socket open on it joins."""
    return f"conversation.{conversation_id}"


def user_group_name(user_id: int | str) -> str:
    """The channel-layer group of one person: every chat socket they have open joins."""
    return f"user.{user_id}"


@functools.cache
def redis_client() -> redis.Redis:
    # One pool per process; redis-py's client is safe to share between threads.
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


def _key(*parts: object) -> str:
    return ":".join([settings.REDIS_PREFIX, *map(str, parts)])


# --- reply text so far ------------------------------------------------------


def record_delta(message_id: UUID | str, seq: int, text: str) -> None:
    """Append streamed text; called by the worker *before* it publishes the same `seq`.

    That order is what makes snapshots safe: a socket joins the group first and
    reads the state second, so any token it might have missed is in the state,
    and any token it gets twice is recognised by its `seq`.
    """
    text_key, seq_key = _key("reply", message_id, "text"), _key("reply", message_id, "seq")
    with redis_client().pipeline(transaction=True) as pipe:
        pipe.append(text_key, text)
        pipe.set(seq_key, seq)
        pipe.expire(text_key, LIVE_TTL_S)
        pipe.expire(seq_key, LIVE_TTL_S)
        pipe.execute()


def read_snapshot(message_id: UUID | str) -> tuple[int, str]:
    """The (seq, text) streamed so far for a reply; (0, "") before its first token."""
    with redis_client().pipeline(transaction=True) as pipe:
        pipe.get(_key("reply", message_id, "seq"))
        pipe.get(_key("reply", message_id, "text"))
        seq, text = pipe.execute()
    return int(seq or 0), text or ""


def clear_reply(message_id: UUID | str) -> None:
    redis_client().delete(
        _key("reply", message_id, "text"), _key("reply", message_id, "seq"), _key("stop", message_id)
    )


# --- stopping ---------------------------------------------------------------


def _stops_channel() -> str:
    return _key("stops")


def request_stop(message_id: UUID | str) -> None:
    """Ask whichever worker writes the reply to stop it: a key it can poll, and a push it hears at once."""
    with redis_client().pipeline(transaction=False) as pipe:
        pipe.set(_key("stop", message_id), "1", ex=LIVE_TTL_S)
        pipe.publish(_stops_channel(), str(message_id))
        pipe.execute()


def stop_requested(message_id: UUID | str) -> bool:
    return bool(redis_client().exists(_key("stop", message_id)))


def stops_requested(message_ids: Collection[str]) -> set[str]:
    """Which of these replies were asked to stop: one round trip for all."""
    ids = list(message_ids)
    with redis_client().pipeline(transaction=False) as pipe:
        for message_id in ids:
            pipe.exists(_key("stop", message_id))
        found = pipe.execute()
    return {message_id for message_id, exists in zip(ids, found, strict=True) if exists}


def listen_for_stops(on_stop: Callable[[str], None], stopping: threading.Event) -> None:
    """Call `on_stop(message_id)` for every stop pushed, until `stopping` is set (run it in a thread).

    Reconnects after Redis blinks; a stop pushed meanwhile is still found
    by the reply loop's poll of the keys.
    """
    while not stopping.is_set():
        try:
            pubsub = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True).pubsub(
                ignore_subscribe_messages=True
            )
            pubsub.subscribe(_stops_channel())
            while not stopping.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    on_stop(message["data"])
            pubsub.close()
        except redis.exceptions.RedisError:
            logger.warning("lost the stop channel; listening again", exc_info=True)
            stopping.wait(1.0)


# --- publishing -------------------------------------------------------------


def group_send(group: str, message: dict[str, Any]) -> None:
    """Send one Channels message to a group from any thread: one PUBLISH, as the layer's own
    `group_send` does, but in this thread, with no event loop to hop to.

    Called from Daphne's socket pool and the worker's job threads, each send
    was a hop to one publisher thread's event loop and back, on the path of
    every `send`'s `message` and `start`. The client retries a stale connection
    after a Redis restart (redis-py's default retry), as for the step script.
    """
    redis_client().publish(group_channel(group), _serializer().serialize(message))


@functools.cache
def _serializer() -> Any:
    # Only for its serializer: events published straight to the groups' channels are serialized as it does.
    return channel_layers.make_backend("default")


def group_channel(group: str) -> str:
    """The Redis pub/sub channel of a group under `RedisPubSubChannelLayer` (its own naming)."""
    return f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}__group__{group}"


def _channel_message(conversation_id: UUID | str, event: dict[str, Any]) -> tuple[str, bytes]:
    """A client event as `publish` sends it: the group's channel and the bytes."""
    message = _serializer().serialize({"type": "chat.event", "event": event})
    return group_channel(group_name(conversation_id)), message


# One engine step's events, recorded and published in one command (a script runs atomically,
# so a snapshot reads the text and `seq` of a whole step, never half of one). Per reply, in
# KEYS: its text and seq keys; in ARGV after the TTL: its text, seq, channel and event.
_STEP_SCRIPT = """
local ttl = ARGV[1]
for i = 1, #KEYS, 2 do
  local a = 2 + (i - 1) * 2
  redis.call('APPEND', KEYS[i], ARGV[a])
  redis.call('EXPIRE', KEYS[i], ttl)
  redis.call('SET', KEYS[i + 1], ARGV[a + 1], 'EX', ttl)
  redis.call('PUBLISH', ARGV[a + 2], ARGV[a + 3])
end
return #KEYS / 2
"""


@functools.cache
def _step_script() -> Any:
    return redis_client().register_script(_STEP_SCRIPT)


def publish_step(emissions: Sequence[Emission]) -> None:
    """Record and publish one engine step's text of many replies: one Redis command.

    For each reply, what `record_delta` then `publish` do, in that order (so
    snapshots stay safe); the events go straight to the groups' pub/sub
    channels, serialized as the channel layer does.
    """
    keys: list[str] = []
    args: list[Any] = [LIVE_TTL_S]
    for emission in emissions:
        keys += [_key("reply", emission.key, "text"), _key("reply", emission.key, "seq")]
        event = events.token_event(emission.key, emission.seq, emission.text)
        args += [emission.text, emission.seq, *_channel_message(emission.channel, event)]
    _step_script()(keys=keys, args=args)


def publish_many(events_by_conversation: Sequence[tuple[UUID | str, dict[str, Any]]]) -> None:
    """Send many client events, each to its conversation's sockets, in one Redis round trip."""
    if not events_by_conversation:
        return
    with redis_client().pipeline(transaction=False) as pipe:
        for conversation_id, event in events_by_conversation:
            pipe.publish(*_channel_message(conversation_id, event))
        pipe.execute()


def publish(conversation_id: UUID | str, event: dict[str, Any]) -> None:
    """Send one client event to every socket open on the conversation."""
    group_send(group_name(conversation_id), {"type": "chat.event", "event": event})


def sessions_end(user_id: int | str, *, code: str = "banned", message: str = "") -> None:
    """Close every socket the person has open (a ban, a deactivation): 4401, as if logged out.

    `code` and `message` are the `error` event each socket sends first; the
    message defaults to the consumer's words for a ban.
    """
    group_send(user_group_name(user_id), {"type": "chat.session_end", "code": code, "message": message})
