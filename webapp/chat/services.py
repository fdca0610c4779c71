"""Operations on conversations and replies: every write goes through here.

`check_*` functions validate and raise ChatInputError; `conversation_*` and
`reply_*` functions write, and publish their events only after the
transaction commits, so no socket ever hears of a row that was rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from inference.chat_template import ContextOverflow, fit_chat
from inference.params import ParamError, SamplingParams, parse_params
from inference.streaming import STAT_FIELDS as REPLY_STAT_FIELDS
from webapp.celery import app as celery_app
from webapp.chat import events, live
from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import live_reply, prompt_history, queue_position

GENERATE_REPLY_TASK = "inference.generate_reply"
TITLE_CHARS = 60
# Queued replies told their new place each time the queue moves; the rest
# hear at their next move within reach.
QUEUE_UPDATES = 100


class ChatInputError(Exception):
    """Input the server refuses; becomes an `error` event and nothing is stored."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- conversations ----------------------------------------------------------


def conversation_create(*, owner: AbstractBaseUser, system_prompt: str = "") -> Conversation:
    return Conversation.objects.create(owner=owner, system_prompt=check_system_prompt(system_prompt))


def conversation_rename(*, conversation: Conversation, title: object) -> Conversation:
    conversation.title = check_title(title)
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def check_title(title: object) -> str:
    if not isinstance(title, str):
        raise ChatInputError("invalid_title", "The title must be text.")
    cleaned = " ".join(title.split())
    if not cleaned:
        raise ChatInputError("empty_title", "The title is empty.")
    limit = Conversation._meta.get_field("title").max_length
    if len(cleaned) > limit:
        raise ChatInputError("title_too_long", f"The title is over {limit} characters.")
    return cleaned


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete a conversation and its messages; a reply in progress is stopped first."""
    reply = live_reply(conversation)
    if reply is not None:
        live.request_stop(reply.id)
    conversation.delete()


def check_system_prompt(system_prompt: str) -> str:
    if len(system_prompt) > settings.MAX_SYSTEM_PROMPT_CHARS:
        raise ChatInputError(
            "system_prompt_too_long",
            f"The system prompt is over {settings.MAX_SYSTEM_PROMPT_CHARS} characters.",
        )
    return system_prompt


# --- sending ------------------------------------------------------------------


def check_send(
    *, conversation: Conversation, content: object, raw_params: object
) -> tuple[str, SamplingParams]:
    """Validate a `send`: the text and the sampling parameters, and that they fit the context."""
    if not isinstance(content, str):
        raise ChatInputError("invalid_content", "content must be a string.")
    if not content.strip():
        raise ChatInputError("empty_message", "The message is empty.")
    if len(content) > settings.MAX_MESSAGE_CHARS:
        raise ChatInputError(
            "message_too_long",
            f"The message is {len(content)} characters; the limit is {settings.MAX_MESSAGE_CHARS}.",
        )
    if "\x00" in content:
        raise ChatInputError("invalid_content", "The message contains a NUL character.")
    params = check_params(raw_params)
    try:
        fit_chat(
            [{"role": "user", "content": content}],
            conversation.system_prompt or None,
            max_tokens=params.max_tokens,
            context_limit=settings.CONTEXT_LIMIT,
        )
    except ContextOverflow as overflow:
        raise ChatInputError("context_overflow", str(overflow)) from None
    return content, params


def check_params(raw_params: object) -> SamplingParams:
    try:
        return parse_params(
            raw_params,
            max_tokens_limit=min(settings.MAX_TOKENS_LIMIT, settings.CONTEXT_LIMIT - 1),
            default_max_tokens=settings.DEFAULT_MAX_TOKENS,
        )
    except ParamError as error:
        raise ChatInputError("invalid_params", str(error)) from None


def reply_send(*, conversation: Conversation, content: str, params: SamplingParams) -> Message:
    """Store the user's message and a queued reply, then announce and enqueue it."""
    with transaction.atomic():
        locked = _lock_idle(conversation)
        user_message = Message.objects.create(
            conversation=locked, role=Message.Role.USER, content=content, status=Message.Status.COMPLETE
        )
        if not locked.title:
            locked.title = _title_from(content)
        locked.save(update_fields=["title", "updated_at"])
        transaction.on_commit(lambda: live.publish(locked.id, events.message_event(user_message)))
        return _create_reply(locked, params)


def reply_regenerate(*, conversation: Conversation, raw_params: object = None) -> Message:
    """Replace the last reply with a new one, generated from the same turns."""
    params = check_params(raw_params)
    with transaction.atomic():
        locked = _lock_idle(conversation)
        last = locked.messages.order_by("-created_at").first()
        if last is None or last.role != Message.Role.ASSISTANT:
            raise ChatInputError("nothing_to_regenerate", "There is no reply to regenerate.")
        last.delete()
        locked.save(update_fields=["updated_at"])
        return _create_reply(locked, params)


def reply_stop(*, conversation: Conversation) -> Message:
    """Ask the worker to end the reply in progress; it ends `stopped` with its text so far."""
    reply = live_reply(conversation)
    if reply is None:
        raise ChatInputError("nothing_to_stop", "No reply is in progress.")
    live.request_stop(reply.id)
    return reply


def _lock_idle(conversation: Conversation) -> Conversation:
    # The row lock serialises two sends racing on one conversation (two tabs).
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if live_reply(locked) is not None:
        raise ChatInputError("reply_in_progress", "A reply is still being written; stop it or wait.")
    return locked


def _create_reply(conversation: Conversation, params: SamplingParams) -> Message:
    reply = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.QUEUED,
        params=params.to_dict(),
    )

    def announce_and_enqueue() -> None:
        live.publish(conversation.id, events.start_event(reply.id, queue_position(reply)))
        celery_app.send_task(GENERATE_REPLY_TASK, args=[str(reply.id)], queue="inference")

    transaction.on_commit(announce_and_enqueue)
    return reply


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


# --- the worker's side --------------------------------------------------------


@dataclass(frozen=True)
class ReplyJob:
    """Everything the worker needs to write one reply, detached from the ORM."""

    message_id: str
    conversation_id: str
    messages: list[dict[str, str]]
    system_prompt: str | None
    params: SamplingParams


def reply_claim(*, message_id: UUID | str) -> ReplyJob | None:
    """Move a queued reply to `streaming` and hand back its job; None if it is not queued.

    A reply already claimed (a redelivered task) or already ended is left alone.
    """
    with transaction.atomic():
        reply = (
            Message.objects.select_for_update()
            .select_related("conversation")
            .filter(id=message_id, role=Message.Role.ASSISTANT)
            .first()
        )
        if reply is None or reply.status != Message.Status.QUEUED:
            return None
        reply.status = Message.Status.STREAMING
        reply.queue_ms = (timezone.now() - reply.created_at).total_seconds() * 1000.0
        reply.save(update_fields=["status", "queue_ms", "updated_at"])
        transaction.on_commit(announce_queue_positions)
    return ReplyJob(
        message_id=str(reply.id),
        conversation_id=str(reply.conversation_id),
        messages=prompt_history(reply),
        system_prompt=reply.conversation.system_prompt or None,
        params=SamplingParams(**reply.params),
    )


def announce_queue_positions() -> None:
    """Tell every queued reply (the first QUEUE_UPDATES) its place, after the queue moved."""
    queued = Message.objects.filter(status=Message.Status.QUEUED).order_by("created_at")
    for position, (reply_id, conversation_id) in enumerate(
        queued.values_list("id", "conversation_id")[:QUEUE_UPDATES]
    ):
        live.publish(conversation_id, events.start_event(reply_id, position))


def reply_finish(
    *,
    message_id: UUID | str,
    status: str,
    content: str,
    stats: dict[str, Any],
    model_name: str,
    error: str = "",
) -> Message:
    """Store a reply's final text, status and stats, then publish `done`."""
    with transaction.atomic():
        reply = Message.objects.select_for_update().get(id=message_id)
        reply.status = status
        reply.content = content
        reply.error = error
        reply.model_name = model_name
        for name in REPLY_STAT_FIELDS:
            setattr(reply, name, stats.get(name))
        reply.save()
        Conversation.objects.filter(pk=reply.conversation_id).update(updated_at=timezone.now())

        def announce() -> None:
            live.publish(reply.conversation_id, events.done_event(reply))
            live.clear_reply(reply.id)

        transaction.on_commit(announce)
    return reply


def reply_delta(*, conversation_id: str, message_id: str, seq: int, text: str) -> None:
    """Record and publish one piece of a reply's text (no database write)."""
    live.record_delta(message_id, seq, text)
    live.publish(conversation_id, events.token_event(message_id, seq, text))
