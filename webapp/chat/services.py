"""Operations on conversations and replies: every write goes through here.

`check_*` functions validate and raise ChatInputError; `conversation_*` and
`reply_*` functions write, and publish their events only after the
transaction commits, so no socket ever hears of a row that was rolled back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from inference.chat_template import ContextOverflow, fit_chat
from inference.params import ParamError, SamplingParams, parse_params
from webapp import prepared
from webapp.accounts.access import default_limits, limits_for_id
from webapp.celery import app as celery_app
from webapp.chat import events, live, quotas, tree
from webapp.chat.models import SETTINGS_FIELDS, Conversation, Message
from webapp.chat.selectors import SendState, live_reply, send_state
from webapp.moderation.services import check_not_sanctioned

GENERATE_REPLY_TASK = "inference.generate_reply"
TITLE_CHARS = 60
# Mistral's own guardrail ("safe_prompt" in its API), prepended to the system
# prompt of a conversation whose `guardrail` setting is on.
GUARDRAIL_PROMPT = (
    "Always assist with care, respect, and truth. Respond with utmost utility yet securely. "
    "Avoid harmful, unethical, prejudiced, or negative content. Ensure replies promote fairness and positivity."
)
# The sampling settings of a conversation that are also `params` of a send.
SAMPLING_SETTINGS = ("temperature", "top_p", "max_tokens", "seed")


class ChatInputError(Exception):
    """Input the server refuses; becomes an `error` event and nothing is stored.

    `retry_after` (seconds) is set when the refusal is a limit that passes.
    """

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


# --- conversations ----------------------------------------------------------


def conversation_create(
    *, owner: AbstractBaseUser, system_prompt: str = "", temporary: bool = False
) -> Conversation:
    """A new conversation; a temporary one is unlisted, never exported, and deleted after TEMPORARY_CHAT_HOURS."""
    expires_at = timezone.now() + timedelta(hours=settings.TEMPORARY_CHAT_HOURS) if temporary else None
    return Conversation.objects.create(
        owner=owner, system_prompt=check_system_prompt(system_prompt), expires_at=expires_at
    )


def conversation_rename(*, conversation: Conversation, title: object) -> Conversation:
    conversation.title = check_title(title)
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def check_title(title: object) -> str:
    return check_name(
        title, code="title", what="title", limit=Conversation._meta.get_field("title").max_length
    )


def check_name(value: object, *, code: str, what: str, limit: int) -> str:
    """A one-line name (a title, a folder's): text, white space folded, not empty, at most `limit` characters."""
    if not isinstance(value, str):
        raise ChatInputError(f"invalid_{code}", f"The {what} must be text.")
    cleaned = " ".join(value.split())
    if not cleaned:
        raise ChatInputError(f"empty_{code}", f"The {what} is empty.")
    if len(cleaned) > limit:
        raise ChatInputError(f"{code}_too_long", f"The {what} is over {limit} characters.")
    return cleaned


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete a conversation and its messages; a reply in progress is stopped first."""
    reply = live_reply(conversation)
    if reply is not None:
        live.request_stop(reply.id)
    conversation.delete()


def _storable(text: str) -> bool:
    """No NUL (PostgreSQL refuses it) and no lone surrogate (JSON can carry one; UTF-8 cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def check_system_prompt(system_prompt: object) -> str:
    if not isinstance(system_prompt, str) or not _storable(system_prompt):
        raise ChatInputError(
            "invalid_system_prompt",
            "The system prompt must be text without NUL characters or lone surrogates.",
        )
    if len(system_prompt) > settings.MAX_SYSTEM_PROMPT_CHARS:
        raise ChatInputError(
            "system_prompt_too_long",
            f"The system prompt is over {settings.MAX_SYSTEM_PROMPT_CHARS} characters.",
        )
    return system_prompt


def system_prompt_for(conversation: Conversation) -> str | None:
    """The system prompt the model sees: the guardrail prompt first when it is on."""
    return _join_system_prompt(conversation.guardrail, conversation.system_prompt)


def check_settings(*, conversation: Conversation, raw_settings: object) -> dict[str, Any]:
    """Validate a `settings` event: any of SETTINGS_FIELDS, merged over the stored ones.

    The sampling values go through the same `parse_params` as a send's
    `params`; a null `max_tokens` or `seed` means the default.
    """
    if not isinstance(raw_settings, dict):
        raise ChatInputError("invalid_settings", "settings must be an object.")
    unknown = sorted(set(raw_settings) - set(SETTINGS_FIELDS))
    if unknown:
        raise ChatInputError(
            "invalid_settings", f"Unknown setting {unknown[0][:40]!r}; allowed: {', '.join(SETTINGS_FIELDS)}."
        )
    merged = {**conversation.chat_settings(), **raw_settings}
    if not isinstance(merged["guardrail"], bool):
        raise ChatInputError("invalid_settings", "guardrail must be true or false.")
    sampling = {name: merged[name] for name in SAMPLING_SETTINGS if merged[name] is not None}
    params = check_params(sampling, max_tokens_limit=_max_tokens_limit(conversation))
    system_prompt = check_system_prompt(merged["system_prompt"])
    check_fits(_join_system_prompt(merged["guardrail"], system_prompt), "x", params)
    return {
        "system_prompt": system_prompt,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": None if merged["max_tokens"] is None else params.max_tokens,
        "seed": params.seed,
        "guardrail": merged["guardrail"],
    }


def _join_system_prompt(guardrail: bool, system_prompt: str) -> str | None:
    parts = [GUARDRAIL_PROMPT] if guardrail else []
    if system_prompt:
        parts.append(system_prompt)
    return "\n\n".join(parts) or None


def conversation_configure(*, conversation: Conversation, chat_settings: dict[str, Any]) -> Conversation:
    """Store checked settings (from `check_settings`) and tell every socket on the conversation."""
    with transaction.atomic():
        for name, value in chat_settings.items():
            setattr(conversation, name, value)
        conversation.save(update_fields=[*chat_settings, "updated_at"])
        transaction.on_commit(lambda: live.publish(conversation.id, events.settings_event(conversation)))
    return conversation


# --- sending ------------------------------------------------------------------


def check_send(
    *, conversation: Conversation, content: object, raw_params: object
) -> tuple[str, SamplingParams]:
    """Validate a `send`: the text and the sampling parameters, and that they fit the context."""
    content = check_content(content)
    params = check_reply_params(
        conversation=conversation,
        content=content,
        raw_params=raw_params,
        max_tokens_limit=_max_tokens_limit(conversation),
    )
    return content, params


def check_reply_params(
    *, conversation: Conversation, content: str, raw_params: object, max_tokens_limit: int
) -> SamplingParams:
    """A send's or an edit's `params` (the conversation's settings fill what they leave out), held
    to `max_tokens_limit`, and that they, the system prompt and `content` fit the context."""
    params = check_params(raw_params, conversation=conversation, max_tokens_limit=max_tokens_limit)
    check_fits(system_prompt_for(conversation), content, params)
    return params


def check_content(content: object) -> str:
    if not isinstance(content, str):
        raise ChatInputError("invalid_content", "content must be a string.")
    if not content.strip():
        raise ChatInputError("empty_message", "The message is empty.")
    if len(content) > settings.MAX_MESSAGE_CHARS:
        raise ChatInputError(
            "message_too_long",
            f"The message is {len(content)} characters; the limit is {settings.MAX_MESSAGE_CHARS}.",
        )
    if not _storable(content):
        raise ChatInputError("invalid_content", "The message contains a NUL character or a lone surrogate.")
    return content


def check_fits(system_prompt: str | None, content: str, params: SamplingParams) -> None:
    """The system prompt, one message and `max_tokens` must fit the context."""
    try:
        fit_chat(
            [{"role": "user", "content": content}],
            system_prompt,
            max_tokens=params.max_tokens,
            context_limit=settings.CONTEXT_LIMIT,
        )
    except ContextOverflow as overflow:
        raise ChatInputError("context_overflow", str(overflow)) from None


def check_params(
    raw_params: object, *, conversation: Conversation | None = None, max_tokens_limit: int | None = None
) -> SamplingParams:
    """Validate a client's `params`; what it leaves out comes from the conversation's settings.

    `max_tokens` is held to `max_tokens_limit`, else to the conversation's owner's limit.
    """
    limit = _max_tokens_limit(conversation) if max_tokens_limit is None else max_tokens_limit
    if conversation is not None and (raw_params is None or isinstance(raw_params, dict)):
        stored = {name: getattr(conversation, name) for name in SAMPLING_SETTINGS}
        # A limit lowered since the setting was stored must not refuse every send.
        if stored["max_tokens"] is not None:
            stored["max_tokens"] = min(stored["max_tokens"], limit)
        raw_params = {**{k: v for k, v in stored.items() if v is not None}, **(raw_params or {})}
    try:
        return parse_params(
            raw_params,
            max_tokens_limit=limit,
            default_max_tokens=settings.DEFAULT_MAX_TOKENS,
        )
    except ParamError as error:
        raise ChatInputError("invalid_params", str(error)) from None


def _max_tokens_limit(conversation: Conversation | None) -> int:
    """The owner's largest `max_tokens` (their groups'), else the site's."""
    if conversation is None:
        return default_limits().max_tokens
    return limits_for_id(conversation.owner_id).max_tokens


def reply_send(
    *,
    conversation: Conversation,
    content: str,
    params: SamplingParams | None = None,
    raw_params: object = None,
    raw: bool = False,
    stop: tuple[str, ...] = (),
) -> Message:
    """Store the user's message at the end of the path shown and a queued reply to it; announce, enqueue.

    `params` already checked (the API's), else `raw_params` are checked here,
    against the limits read with the send's other checks (`check_content`
    comes first). For the API: with `raw` the worker encodes `content` as the
    whole prompt, no chat template; `stop` strings end the reply before the first one.
    """
    with transaction.atomic():
        locked, state = lock_idle(conversation)
        if params is None:
            params = check_reply_params(
                conversation=locked,
                content=content,
                raw_params=raw_params,
                max_tokens_limit=state.limits.max_tokens,
            )
        quotas.check_reply_allowed(user_id=locked.owner_id, state=state)
        user_message = add_message(
            conversation=locked,
            parent_id=state.parent_id,
            role=Message.Role.USER,
            content=content,
            status=Message.Status.COMPLETE,
        )
        if state.only_child:
            position = tree.Position(state.parent_id, (user_message.id,), 0)
        else:
            position = tree.message_position(user_message)
        # Registered first, so the echo goes out before the reply's `start`.
        transaction.on_commit(lambda: live.publish(locked.id, events.message_event(user_message, position)))
        if not locked.title:
            locked.title = _title_from(content)
        reply = create_reply(locked, params, parent=user_message, queued=state.queued, raw=raw, stop=stop)
        prepared.update(locked, ["title", "current_leaf", "updated_at"])
        return reply


def check_resume(*, conversation: Conversation, message_id: object) -> Message:
    """The reply a client reconnecting after a drop was watching (a `resume` event)."""
    reply = message_of(conversation, message_id)
    if reply.role != Message.Role.ASSISTANT:
        raise ChatInputError("not_a_reply", "That message is not a reply.")
    return reply


def message_of(conversation: Conversation, message_id: object) -> Message:
    if not isinstance(message_id, str):
        raise ChatInputError("invalid_message_id", "message_id must be a string.")
    try:
        message = conversation.messages.filter(id=UUID(message_id)).first()
    except ValueError:
        message = None
    if message is None:
        raise ChatInputError("unknown_message", "No message of this conversation has that id.")
    return message


def reply_stop(*, conversation: Conversation) -> Message:
    """Ask the worker to end the reply in progress; it ends `stopped` with its text so far."""
    reply = live_reply(conversation)
    if reply is None:
        raise ChatInputError("nothing_to_stop", "No reply is in progress.")
    live.request_stop(reply.id)
    return reply


def lock_idle(conversation: Conversation) -> tuple[Conversation, SendState]:
    """The conversation's row and its owner's, locked, once sure no reply is in progress; what a send checks.

    The caller checks its parameters against `state.limits`, then calls
    `quotas.check_reply_allowed` last (it takes a rate-limit slot).
    """
    # The conversation's row lock serialises two sends racing on one conversation (two
    # tabs); its owner's, two sends in two conversations (MAX_LIVE_REPLIES_PER_USER).
    found = _LOCKED_CONVERSATION.rows(conversation_id=conversation.pk)
    if not found:
        # Deleted under an open page: by its owner in another tab, or by retention (a temporary chat's end).
        raise ChatInputError("conversation_deleted", "This conversation has been deleted.")
    *values, _ = found[0]
    locked = Conversation.from_db(DEFAULT_DB_ALIAS, _CONVERSATION_COLUMNS, values)
    state = send_state(conversation_id=locked.pk, owner_id=locked.owner_id, leaf_id=locked.current_leaf_id)
    if state.sanctioned:
        check_not_sanctioned(locked.owner_id)  # a suspended or banned user's send stores nothing
    if state.reply_in_progress:
        raise ChatInputError("reply_in_progress", "A reply is still being written; stop it or wait.")
    if not state.active:
        # Deactivated since the socket opened, and the close it was sent went missing (a Redis blip).
        raise ChatInputError("deactivated", "This account has been deactivated; nothing was sent.")
    return locked, state


_CONVERSATION_COLUMNS = [field.attname for field in Conversation._meta.concrete_fields]
# The conversation's row and its owner's, locked: compiled once, as the ORM's cost 1 ms a send.
_LOCKED_CONVERSATION = prepared.PreparedQuery(
    lambda _: (
        Conversation.objects.filter(id=prepared.Param("conversation_id", Conversation._meta.pk))
        .order_by()
        .values_list(
            *_CONVERSATION_COLUMNS,
            "owner__is_active",  # joins the owner's row, to lock it
        )
    ),
    for_update_of=(Conversation, settings.AUTH_USER_MODEL),
)


def add_message(*, conversation: Conversation, parent_id: UUID | None, **fields: Any) -> Message:
    """A new message under `parent_id` (None: a first message, a root of the tree)."""
    message = Message(conversation=conversation, parent_id=parent_id, **fields)
    message.explicit_parent = True
    prepared.insert(message)  # Model.save's work, without its cost on the send path
    return message


def create_reply(
    conversation: Conversation,
    params: SamplingParams,
    *,
    parent: Message,
    queued: int,
    earlier_versions: tuple[UUID, ...] = (),
    raw: bool = False,
    stop: tuple[str, ...] = (),
) -> Message:
    """A queued reply to `parent`, made the end of the path shown (the caller saves the conversation).

    `earlier_versions`: the replies to `parent` already shown, for the
    `start` event's sibling fields; `queued`: the replies queued before it
    (`SendState.queued`). It is announced and enqueued on commit.
    """
    stored = params.to_dict()
    # reply_jobs.reply_claim takes these back out before rebuilding SamplingParams.
    if raw:
        stored["raw"] = True
    if stop:
        stored["stop"] = list(stop)
    reply = add_message(
        conversation=conversation,
        parent_id=parent.id,
        role=Message.Role.ASSISTANT,
        status=Message.Status.QUEUED,
        params=stored,
    )
    conversation.current_leaf = reply
    position = tree.Position(parent.id, (*earlier_versions, reply.id), len(earlier_versions))

    def announce_and_enqueue() -> None:
        live.publish(conversation.id, events.start_event(reply.id, queued, position))
        reply_enqueue(reply_id=reply.id)

    transaction.on_commit(announce_and_enqueue)
    return reply


def reply_enqueue(*, reply_id: UUID | str) -> None:
    """Put a queued reply's job on the inference queue (the task is idempotent: see reply_claim)."""
    celery_app.send_task(GENERATE_REPLY_TASK, args=[str(reply_id)], queue="inference")


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"
