"""Writes of the API: keys (create, authenticate, revoke) and the conversation behind each request.

A request becomes an ordinary conversation of the key's owner and goes
through `webapp.chat.services.reply_send`: the same limits, queue, worker,
engine and moderation as the page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from webapp.api.models import ApiConversation, ApiKey
from webapp.api.schema import ApiRequest
from webapp.chat import services as chat_services
from webapp.chat.models import Conversation, Message
from webapp.moderation.models import ModerationEvent

KEY_PREFIX = "mck-"
SHOWN_PREFIX_CHARS = 12
MAX_KEYS_PER_USER = 50
# last_used_at is written at most this often per key: not one write per request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class ApiKeyError(Exception):
    """A key name or count the settings page refuses."""


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_key_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ApiKeyError("Give the key a name.")
    cleaned = " ".join(name.split())
    limit = ApiKey._meta.get_field("name").max_length
    if len(cleaned) > limit:
        raise ApiKeyError(f"The name is over {limit} characters.")
    return cleaned


def api_key_create(*, owner: AbstractBaseUser, name: object) -> tuple[ApiKey, str]:
    """A new key for `owner`: the row, and the key itself, which is never stored nor shown again."""
    cleaned = check_key_name(name)
    if ApiKey.objects.filter(owner=owner, revoked_at__isnull=True).count() >= MAX_KEYS_PER_USER:
        raise ApiKeyError(f"At most {MAX_KEYS_PER_USER} keys; revoke one first.")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        owner=owner, name=cleaned, prefix=secret[:SHOWN_PREFIX_CHARS], key_hash=hash_key(secret)
    )
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, authorization: str) -> ApiKey | None:
    """The active key of an `Authorization: Bearer <key>` header, its owner loaded; None otherwise."""
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    api_key = (
        ApiKey.objects.select_related("owner")
        .filter(key_hash=hash_key(secret), revoked_at__isnull=True, owner__is_active=True)
        .first()
    )
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def api_reply_start(*, api_key: ApiKey, request: ApiRequest, conversation_id: UUID) -> Message:
    """Store the request's messages as a new conversation and queue its reply.

    The id is chosen by the caller, which subscribes to the conversation's
    events before anything is published. Raises ChatInputError (limits) with
    nothing stored.
    """
    with transaction.atomic():
        conversation = Conversation.objects.create(
            id=conversation_id,
            owner=api_key.owner,
            system_prompt=request.system_prompt,
            temperature=request.params.temperature,
            top_p=request.params.top_p,
            seed=request.params.seed,
            # The request's messages are the whole prompt: no guardrail prompt added to them.
            guardrail=False,
        )
        ApiConversation.objects.create(
            conversation=conversation, api_key=api_key, stored=settings.API_STORE_CONVERSATIONS
        )
        # Earlier turns get distinct, increasing times: the worker orders the prompt by them.
        earlier = request.turns[:-1]
        start = timezone.now() - dt.timedelta(seconds=1)
        parent_id = None
        for index, turn in enumerate(earlier):
            message = chat_services.add_message(
                conversation=conversation, parent_id=parent_id, role=turn["role"], content=turn["content"]
            )
            parent_id = message.id
            Message.objects.filter(pk=message.pk).update(created_at=start + dt.timedelta(microseconds=index))
        # The request's turns are one path (webapp/chat/tree.py): the last one is sent after them.
        Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=parent_id)
        return chat_services.reply_send(
            conversation=conversation,
            content=request.turns[-1]["content"],
            params=request.params,
            raw=request.raw,
            stop=request.stop,
        )


def api_conversation_end(*, conversation_id: UUID) -> None:
    """After the response: a conversation not to be stored is deleted, unless moderation caught something.

    What a hook caught stays for staff, in a conversation hidden from its owner's lists.
    """
    link = ApiConversation.objects.filter(conversation_id=conversation_id, stored=False).first()
    if link is None:
        return
    caught = ModerationEvent.objects.filter(message__conversation_id=conversation_id).exists()
    live = Message.objects.filter(conversation_id=conversation_id, status__in=Message.LIVE_STATUSES).exists()
    if not caught and not live:
        Conversation.objects.filter(pk=conversation_id).delete()
