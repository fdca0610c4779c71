"""Importing conversations from our JSON export: one document, or a zip of them.

An uploaded file is hostile until checked: its size, every zip entry's name,
size and kind before any is read (webapp/chat/import_files.py), then each
document's schema, types, limits and tree (version 2: no orphan, no cycle). All of it happens in one transaction, so a bad file imports nothing.
The limits are settings (`IMPORT_*`, `MAX_MESSAGE_CHARS`, ...); docs/exports.md
lists them.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from webapp.chat.exports import (
    CONVERSATION_SETTINGS,
    DOCUMENT_FORMAT,
    INDEX_FORMAT,
    READABLE_VERSIONS,
)
from webapp.chat.import_files import ZIP_MAGIC, ImportRejected, megabytes, parse_document, zip_documents
from webapp.chat.models import STAT_FIELDS, Conversation, Folder, Message
from webapp.chat.organise import folder_named
from webapp.chat.services import ChatInputError, check_name, check_settings

CONVERSATION_KEYS = {
    "format",
    "version",
    "id",
    "title",
    "system_prompt",
    "settings",
    "created_at",
    "updated_at",
    "messages",
}
MESSAGE_KEYS = {"id", "role", "content", "status", "params", "stats", "error", "model_name", "created_at"}
# What version 2 added: the tree (a parent per message) and the path shown.
# Optional: where the person filed it (exports.organised_fields).
ORGANISED_KEYS = {"folder", "pinned", "archived"}
TREE_CONVERSATION_KEYS = CONVERSATION_KEYS | {"current_leaf_id"} | ORGANISED_KEYS
TREE_MESSAGE_KEYS = MESSAGE_KEYS | {"parent_id"}
INTEGER_STATS = {"prompt_tokens", "completion_tokens"}
# A reply that was still being written when exported has no worker behind it here.
INTERRUPTED_ERROR = "Imported while the reply was still being written."


@dataclass
class MessageDraft:
    # The file's own ids: only to link parents; the import gives new ones.
    file_id: str | None
    parent_id: str | None
    role: str
    content: str
    status: str
    params: dict[str, Any]
    stats: dict[str, float | int | None]
    error: str
    model_name: str
    created_at: datetime | None


@dataclass
class ConversationDraft:
    title: str
    system_prompt: str
    created_at: datetime | None
    updated_at: datetime | None
    messages: list[MessageDraft] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # checked by services.check_settings
    # Index in `messages` of each one's parent (None: a first message), and of the path's last.
    parents: list[int | None] = field(default_factory=list)
    leaf: int | None = None
    folder: str | None = None
    pinned: bool = False
    archived: bool = False


def conversation_import(
    *, owner: AbstractBaseUser, file: IO[bytes], size: int | None = None
) -> list[Conversation]:
    """Create the conversations of an uploaded export for `owner`, with new ids; all or nothing."""
    if size is None:
        size = file.seek(0, 2)
    if size > settings.IMPORT_MAX_BYTES:
        raise ImportRejected(
            f"The file is {megabytes(size)}; the limit is {megabytes(settings.IMPORT_MAX_BYTES)}."
        )
    file.seek(0)
    is_zip = file.read(4) in ZIP_MAGIC
    file.seek(0)
    documents = zip_documents(file) if is_zip else iter([("The file", file.read())])
    imported: list[Conversation] = []
    with transaction.atomic():
        for where, raw in documents:
            document = parse_document(raw, where=where)
            if is_zip and isinstance(document, dict) and document.get("format") == INDEX_FORMAT:
                continue  # the export's own table of contents
            imported.append(_create(owner, check_document(document, where=where)))
        if not imported:
            raise ImportRejected("The zip holds no conversations.")
    return imported


# --- checking a document ------------------------------------------------------------------


def check_document(document: object, *, where: str) -> ConversationDraft:
    """A conversation document of schema `mistral-chat/conversation` v1 or v2, checked field by field."""
    if not isinstance(document, dict):
        raise ImportRejected(f"{where} is not a conversation: expected a JSON object.")
    if document.get("format") != DOCUMENT_FORMAT:
        raise ImportRejected(f'{where} is not a conversation export: "format" must be "{DOCUMENT_FORMAT}".')
    version = document.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        readable = " and ".join(str(number) for number in READABLE_VERSIONS)
        raise ImportRejected(
            f"{where} has version {json.dumps(version)}; this server reads versions {readable}."
        )
    is_tree = version >= 2
    _no_unknown_keys(document, TREE_CONVERSATION_KEYS if is_tree else CONVERSATION_KEYS, where)
    if "id" in document:
        _text(document, "id", where, limit=100)  # new ids are given; the old one is only checked
    title_limit = Conversation._meta.get_field("title").max_length
    draft = ConversationDraft(
        title=_text(document, "title", where, limit=title_limit),
        system_prompt=_text(document, "system_prompt", where, limit=settings.MAX_SYSTEM_PROMPT_CHARS),
        created_at=_time(document, "created_at", where),
        updated_at=_time(document, "updated_at", where),
    )
    if "settings" in document:
        draft.settings = _check_settings(document["settings"], draft.system_prompt, where)
    _check_organised(draft, document, where)
    messages = document.get("messages")
    if not isinstance(messages, list):
        raise ImportRejected(f'{where}: "messages" must be a list.')
    if len(messages) > settings.IMPORT_MAX_MESSAGES:
        raise ImportRejected(
            f"{where} has {len(messages)} messages; the limit is {settings.IMPORT_MAX_MESSAGES} per conversation."
        )
    previous: datetime | None = None
    for number, message in enumerate(messages):
        draft.messages.append(_check_message(message, f"{where}: messages[{number}]", is_tree=is_tree))
        created_at = draft.messages[-1].created_at
        if created_at is not None and previous is not None and created_at < previous:
            # The page orders messages by time: an earlier time would move this one up.
            raise ImportRejected(
                f"{where}: messages[{number}].created_at is earlier than the message before it."
            )
        previous = created_at or previous
    if is_tree:
        _check_tree(draft, document.get("current_leaf_id"), where)
    else:  # version 1: a list, each message after the one before it, all of it shown
        draft.parents = [None, *range(len(draft.messages) - 1)][: len(draft.messages)]
        draft.leaf = len(draft.messages) - 1 if draft.messages else None
    return draft


def _check_tree(draft: ConversationDraft, leaf_id: object, where: str) -> None:
    """Link each message to its parent by the file's ids; an orphan, a cycle or a bad leaf refuses the file."""
    index: dict[str, int] = {}
    for number, message in enumerate(draft.messages):
        if message.file_id is None:
            continue  # nothing can name it as a parent
        if message.file_id in index:
            raise ImportRejected(
                f"{where}: messages[{number}].id is also the id of messages[{index[message.file_id]}]."
            )
        index[message.file_id] = number
    for number, message in enumerate(draft.messages):
        if message.parent_id is not None and message.parent_id not in index:
            raise ImportRejected(
                f"{where}: messages[{number}].parent_id names no message of the file (an orphan)."
            )
        draft.parents.append(None if message.parent_id is None else index[message.parent_id])
    for number in range(len(draft.messages)):
        seen, at = {number}, draft.parents[number]
        while at is not None:
            if at in seen:
                raise ImportRejected(
                    f"{where}: messages[{number}] is its own ancestor through parent_id (a cycle)."
                )
            seen.add(at)
            at = draft.parents[at]
    if leaf_id is None:
        draft.leaf = len(draft.messages) - 1 if draft.messages else None
    elif not isinstance(leaf_id, str) or leaf_id not in index:
        raise ImportRejected(f'{where}: "current_leaf_id" names no message of the file.')
    else:
        draft.leaf = index[leaf_id]


def _check_organised(draft: ConversationDraft, document: dict[str, Any], where: str) -> None:
    """The optional folder name, pinned and archived flags; the name is checked as the list page checks it."""
    for flag in ("pinned", "archived"):
        if flag in document:
            if not isinstance(document[flag], bool):
                raise ImportRejected(f"{where}.{flag} must be true or false.")
            setattr(draft, flag, document[flag])
    if document.get("folder") is not None:
        limit = Folder._meta.get_field("name").max_length
        try:
            draft.folder = check_name(document["folder"], code="folder_name", what="folder name", limit=limit)
        except ChatInputError:
            raise ImportRejected(
                f"{where}.folder must be a folder name: text of 1 to {limit} characters."
            ) from None


def _check_settings(raw: object, system_prompt: str, where: str) -> dict[str, Any]:
    """The conversation's reply settings, held to the same limits as the settings panel's."""
    if not isinstance(raw, dict) or set(raw) - set(CONVERSATION_SETTINGS):
        raise ImportRejected(
            f'{where}: "settings" must be an object with only {", ".join(CONVERSATION_SETTINGS)}.'
        )
    try:
        checked = check_settings(conversation=Conversation(system_prompt=system_prompt), raw_settings=raw)
    except ChatInputError as error:
        raise ImportRejected(f"{where}: settings: {error.message}") from None
    return {name: checked[name] for name in CONVERSATION_SETTINGS}


def _check_message(message: object, where: str, *, is_tree: bool) -> MessageDraft:
    if not isinstance(message, dict):
        raise ImportRejected(f"{where} must be a JSON object.")
    _no_unknown_keys(message, TREE_MESSAGE_KEYS if is_tree else MESSAGE_KEYS, where)
    role = message.get("role")
    if role not in Message.Role.values:
        raise ImportRejected(f'{where}.role must be "user" or "assistant", not {json.dumps(role)[:40]}.')
    if "content" not in message:
        raise ImportRejected(f"{where} has no content.")
    limit = settings.MAX_MESSAGE_CHARS if role == Message.Role.USER else settings.IMPORT_MAX_REPLY_CHARS
    status = message.get("status", Message.Status.COMPLETE)
    if status not in Message.Status.values:
        raise ImportRejected(f"{where}.status must be one of {', '.join(Message.Status.values)}.")
    error = _text(message, "error", where, limit=settings.IMPORT_MAX_REPLY_CHARS)
    if status in Message.LIVE_STATUSES:
        status, error = Message.Status.FAILED, error or INTERRUPTED_ERROR
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise ImportRejected(f"{where}.params must be a JSON object.")
    file_id = _text(message, "id", where, limit=100) if "id" in message else None
    parent_id = message.get("parent_id")
    if parent_id is not None:
        parent_id = _text(message, "parent_id", where, limit=100)
    return MessageDraft(
        file_id=file_id,
        parent_id=parent_id,
        role=role,
        content=_text(message, "content", where, limit=limit),
        status=status,
        params=params,
        stats=_stats(message.get("stats", {}), where),
        error=error,
        model_name=_text(
            message, "model_name", where, limit=Message._meta.get_field("model_name").max_length
        ),
        created_at=_time(message, "created_at", where),
    )


def _no_unknown_keys(value: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(value) - known)
    if unknown:
        raise ImportRejected(f"{where} has fields this version does not know: {', '.join(unknown)[:200]}.")


def _text(value: dict[str, Any], key: str, where: str, *, limit: int) -> str:
    text = value.get(key, "")
    if not isinstance(text, str):
        raise ImportRejected(f"{where}.{key} must be a string.")
    if len(text) > limit:
        raise ImportRejected(f"{where}.{key} is {len(text)} characters; the limit is {limit}.")
    if "\x00" in text:
        raise ImportRejected(f"{where}.{key} contains a NUL character.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: no database stores it
        raise ImportRejected(f"{where}.{key} contains an invalid character escape.") from None
    return text


def _time(value: dict[str, Any], key: str, where: str) -> datetime | None:
    if key not in value:
        return None
    text = value[key]
    try:
        moment = parse_datetime(text) if isinstance(text, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ImportRejected(f"{where}.{key} must be an ISO 8601 time with a time zone.")
    return moment


def _stats(stats: object, where: str) -> dict[str, float | int | None]:
    if not isinstance(stats, dict):
        raise ImportRejected(f"{where}.stats must be a JSON object.")
    _no_unknown_keys(stats, set(STAT_FIELDS), f"{where}.stats")
    checked: dict[str, float | int | None] = {}
    for name in STAT_FIELDS:
        number = stats.get(name)
        if number is None:
            checked[name] = None
            continue
        whole = name in INTEGER_STATS
        valid_type = type(number) is int or (not whole and type(number) is float)
        if not valid_type or number < 0 or not math.isfinite(number) or (whole and number > 2**31 - 1):
            kind = "a whole number" if whole else "a number"
            raise ImportRejected(f"{where}.stats.{name} must be {kind}, at least 0, or null.")
        checked[name] = number
    return checked


# --- writing ----------------------------------------------------------------------------------


def _create(owner: AbstractBaseUser, draft: ConversationDraft) -> Conversation:
    now = timezone.now()
    times = _message_times(draft, now)
    created_at = draft.created_at or (times[0] if times else now)
    updated_at = draft.updated_at or (times[-1] if times else created_at)
    try:
        folder = None if draft.folder is None else folder_named(owner=owner, name=draft.folder)
    except ChatInputError as error:  # too many folders
        raise ImportRejected(error.message) from None
    conversation = Conversation.objects.create(
        owner=owner,
        title=draft.title,
        system_prompt=draft.system_prompt,
        folder=folder,
        pinned=draft.pinned,
        archived_at=now if draft.archived else None,
        **draft.settings,
    )
    # auto_now/auto_now_add overwrite the times on insert; an update keeps the exported ones.
    Conversation.objects.filter(pk=conversation.pk).update(created_at=created_at, updated_at=updated_at)
    conversation.created_at, conversation.updated_at = created_at, updated_at
    # Ids in ascending order, so messages of equal time keep the file's order (ties sort by id).
    ids = sorted(uuid.uuid4() for _ in draft.messages)
    rows = [
        Message(
            id=message_id,
            conversation=conversation,
            role=message.role,
            content=message.content,
            status=message.status,
            params=message.params,
            error=message.error,
            model_name=message.model_name,
            parent_id=None if parent is None else ids[parent],
            **message.stats,
        )
        for message_id, message, parent in zip(ids, draft.messages, draft.parents, strict=True)
    ]
    Message.objects.bulk_create(rows, batch_size=500)
    for row, moment in zip(rows, times, strict=True):
        row.created_at = moment
    Message.objects.bulk_update(rows, ["created_at"], batch_size=500)
    if draft.leaf is not None:
        conversation.current_leaf_id = ids[draft.leaf]
        Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=ids[draft.leaf])
    return conversation


def _message_times(draft: ConversationDraft, now: datetime) -> list[datetime]:
    """Each message's time; a missing one is a microsecond after the one before it."""
    times: list[datetime] = []
    previous = draft.created_at or now
    for message in draft.messages:
        moment = message.created_at or (previous + timedelta(microseconds=1) if times else previous)
        times.append(moment)
        previous = moment
    return times
