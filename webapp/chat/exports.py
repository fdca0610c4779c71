"""Conversations as files: the versioned JSON document, Markdown, text, fine-tuning JSONL and HTML.

Also the safe file names, and the zip of many conversations, written as a
stream so that exporting thousands of conversations holds one chunk of them
in memory at a time. docs/exports.md documents every format.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from django.db.models import F, Prefetch, QuerySet
from django.template.loader import render_to_string

from webapp.chat.export_text import markdown, plain_text, title_of
from webapp.chat.models import Conversation, Message
from webapp.chat.tree import MessageTree, tree_of_messages

DOCUMENT_FORMAT = "mistral-chat/conversation"
INDEX_FORMAT = "mistral-chat/index"
DOCUMENT_VERSION = 2
# Versions a reader still imports: 1 was a list, without parents.
READABLE_VERSIONS = (1, 2)
INDEX_VERSION = 1
# The conversation's own reply settings (the system prompt has its own key).
CONVERSATION_SETTINGS = ("temperature", "top_p", "max_tokens", "seed", "guardrail")
# Conversations fetched (with their messages) per query while streaming a zip.
EXPORT_CHUNK = 100
# The zip is handed to the server in pieces of about this size.
ZIP_PIECE_BYTES = 256 * 1024
FILENAME_CHARS = 60
FAILED_ENTRY = "EXPORT-INCOMPLETE.txt"
FAILED_TEXT = (
    "The export stopped early because of a server error, so this zip is incomplete. Please try again.\n"
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportFormat:
    extension: str
    content_type: str


FORMATS: dict[str, ExportFormat] = {
    "json": ExportFormat("json", "application/json; charset=utf-8"),
    "md": ExportFormat("md", "text/markdown; charset=utf-8"),
    "txt": ExportFormat("txt", "text/plain; charset=utf-8"),
    "jsonl": ExportFormat("jsonl", "application/jsonl; charset=utf-8"),
    "html": ExportFormat("html", "text/html; charset=utf-8"),
}
# The export-all zip offers the formats meant to be read back or fed to tools.
ZIP_FORMATS = ("json", "md", "txt", "jsonl")


# --- one conversation ----------------------------------------------------------


def messages_for_export(conversation: Conversation) -> list[Message]:
    """Every message of the conversation, oldest first, hidden ones marked (`hidden_id`) for the tree."""
    # The id breaks ties between equal times, the same way on every database.
    return list(_with_hidden(conversation.messages.order_by("created_at", "id")))


def _with_hidden(messages: QuerySet[Message]) -> QuerySet[Message]:
    return messages.annotate(hidden_id=F("moderation_hidden__id"))


@dataclass(frozen=True)
class ExportTree:
    """What an export shows of a conversation: the messages its owner sees, as a tree."""

    tree: MessageTree
    messages: dict[Any, Message]  # by id, oldest first
    leaf: Any

    @classmethod
    def of(cls, conversation: Conversation, messages: Sequence[Message]) -> ExportTree:
        hidden = {message.id for message in messages if getattr(message, "hidden_id", None) is not None}
        tree = tree_of_messages(messages, hidden=hidden)
        shown = {message.id: message for message in messages if message.id in tree}
        return cls(tree, shown, tree.leaf(conversation.current_leaf_id))

    def paths(self, *, all_paths: bool) -> list[list[Message]]:
        """The path shown, or every path (one per leaf, oldest first)."""
        keys = self.tree.all_paths() if all_paths else [self.tree.path_to(self.leaf)]
        return [[self.messages[key] for key in path] for path in keys if path]


def render_conversation(
    conversation: Conversation, messages: Sequence[Message], export_format: str, *, all_paths: bool = False
) -> bytes:
    """One conversation in one of FORMATS, as the bytes of the file.

    `messages`: all of the conversation's (`messages_for_export`). `json` keeps
    the whole tree; the others show the path shown, or with `all_paths` every
    path (`html`: always the path shown).
    """
    shown = ExportTree.of(conversation, messages)
    if export_format == "json":
        text = json.dumps(conversation_document(conversation, messages), ensure_ascii=False, indent=2) + "\n"
    elif export_format == "jsonl":
        lines = [finetune_messages(conversation, path) for path in shown.paths(all_paths=all_paths)]
        text = "".join(json.dumps({"messages": turns}, ensure_ascii=False) + "\n" for turns in lines if turns)
    elif export_format == "md":
        text = markdown(conversation, shown.paths(all_paths=all_paths))
    elif export_format == "txt":
        text = plain_text(conversation, shown.paths(all_paths=all_paths))
    elif export_format == "html":
        text = render_to_string(
            "chat/export_conversation.html",
            {
                "conversation": conversation,
                "chat_messages": shown.paths(all_paths=False)[0] if shown.messages else [],
                "title": title_of(conversation),
            },
        )
    else:
        raise ValueError(f"unknown export format {export_format!r}")
    return text.encode("utf-8")


def conversation_document(conversation: Conversation, messages: Sequence[Message]) -> dict[str, Any]:
    """The lossless JSON document, schema `mistral-chat/conversation` version 2: the whole tree.

    A reply a moderator hid is left out; its children name the message before it as their parent.
    """
    shown = ExportTree.of(conversation, messages)
    document = {
        "format": DOCUMENT_FORMAT,
        "version": DOCUMENT_VERSION,
        "id": str(conversation.id),
        "title": conversation.title,
        "system_prompt": conversation.system_prompt,
        "settings": {name: getattr(conversation, name) for name in CONVERSATION_SETTINGS},
        "created_at": iso_time(conversation.created_at),
        "updated_at": iso_time(conversation.updated_at),
        "current_leaf_id": _text_id(shown.leaf),
        "messages": [
            {
                "id": str(message.id),
                "parent_id": _text_id(shown.tree.parent[message.id]),
                "role": message.role,
                "content": message.content,
                "status": message.status,
                # Sorted: PostgreSQL's jsonb keeps its own key order, SQLite the original one.
                "params": dict(sorted(message.params.items())),
                "stats": message.stats(),
                "error": message.error,
                "model_name": message.model_name,
                "created_at": iso_time(message.created_at),
            }
            for message in shown.messages.values()
        ],
    }
    return document | organised_fields(conversation)


def organised_fields(conversation: Conversation) -> dict[str, Any]:
    """Where the person filed it: optional fields of version 2, written only when set.

    So a conversation nobody organised exports as it did before they existed,
    and a reader from before reads it.
    """
    fields: dict[str, Any] = {}
    if conversation.folder_id is not None:
        fields["folder"] = conversation.folder.name
    if conversation.pinned:
        fields["pinned"] = True
    if conversation.archived_at is not None:
        fields["archived"] = True
    return fields


def _text_id(key: object) -> str | None:
    return None if key is None else str(key)


def finetune_messages(conversation: Conversation, messages: Sequence[Message]) -> list[dict[str, str]]:
    """The conversation as chat fine-tuning turns (TRL, mistral-finetune): `[{"role", "content"}]`.

    The system prompt leads as a `system` turn; then the pairs of
    `finetune_pairs`. No pairs: no turns at all.
    """
    turns: list[dict[str, str]] = []
    for question, reply in finetune_pairs(messages):
        turns.append({"role": "user", "content": question.content})
        turns.append({"role": "assistant", "content": reply.content})
    if turns and conversation.system_prompt:
        turns.insert(0, {"role": "system", "content": conversation.system_prompt})
    return turns


def finetune_pairs(messages: Sequence[Message]) -> list[tuple[Message, Message]]:
    """The questions and replies worth learning from, in order.

    Like `selectors.prompt_history`: a question stays only with a complete or
    stopped reply that has text; blocked messages, failed or empty replies and
    the questions they leave unanswered go.
    """
    pairs: list[tuple[Message, Message]] = []
    question: Message | None = None
    for message in messages:
        if message.role == Message.Role.USER:
            # A newer question replaces one that got no reply.
            question = None if message.status == Message.Status.BLOCKED else message
        elif question is not None:
            if message.status in (Message.Status.COMPLETE, Message.Status.STOPPED) and message.content:
                pairs.append((question, message))
            question = None
    return pairs


def iso_time(moment: datetime) -> str:
    # A fixed shape (UTC, microseconds always written) so exports compare as text.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


# --- file names -----------------------------------------------------------------


def ascii_filename_stem(title: str) -> str:
    """A file name stem safe everywhere: ASCII letters, digits, `-`, `_`; never empty."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9_]+", "-", ascii_title).strip("-_")[:FILENAME_CHARS].strip("-_")
    return stem or "conversation"


def attachment_disposition(title: str, extension: str) -> str:
    """Content-Disposition for a download named after a title: an ASCII `filename`, plus the
    RFC 5987 `filename*` (which browsers prefer) when the title is not ASCII."""
    header = f'attachment; filename="{ascii_filename_stem(title)}.{extension}"'
    # Keep the title's letters but never a path separator, quote or control character.
    unicode_stem = re.sub(r'[\x00-\x1f\x7f/\\"<>:|?*]+', "-", title).strip(" .-")[:FILENAME_CHARS]
    if unicode_stem and not title.isascii():
        header += f"; filename*=UTF-8''{quote(f'{unicode_stem}.{extension}', safe='')}"
    return header


def zip_entry_name(conversation: Conversation, extension: str) -> str:
    # The id's start keeps two conversations of the same title apart.
    return f"{ascii_filename_stem(conversation.title)}-{conversation.id.hex[:8]}.{extension}"


# --- many conversations: a streamed zip -------------------------------------------------


def conversations_with_messages(conversations: QuerySet[Conversation]) -> Iterator[Conversation]:
    """The conversations oldest first, each with `export_messages` (all, as `messages_for_export`), EXPORT_CHUNK at a time."""
    return (
        conversations.order_by("created_at", "id")
        .select_related("folder")
        .prefetch_related(
            Prefetch(
                "messages",
                queryset=_with_hidden(Message.objects.order_by("created_at", "id")),
                to_attr="export_messages",
            )
        )
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def export_zip(
    conversations: QuerySet[Conversation],
    export_format: str,
    *,
    exported_at: datetime,
    all_paths: bool = False,
) -> Iterator[bytes]:
    """A zip with one file per conversation and an `index.json`, produced piece by piece."""
    extension = FORMATS[export_format].extension
    index: list[dict[str, Any]] = []
    seen: set[str] = set()

    def files() -> Iterator[tuple[str, bytes, datetime]]:
        for conversation in conversations_with_messages(conversations):
            messages = conversation.export_messages
            name = zip_entry_name(conversation, extension)
            if name in seen:  # the same title and the same first 8 hex digits of the id
                name = f"{ascii_filename_stem(conversation.title)}-{conversation.id.hex}.{extension}"
            seen.add(name)
            index.append(
                {
                    "file": name,
                    "id": str(conversation.id),
                    "title": conversation.title,
                    "created_at": iso_time(conversation.created_at),
                    "updated_at": iso_time(conversation.updated_at),
                    "messages": len(ExportTree.of(conversation, messages).messages),
                }
            )
            content = render_conversation(conversation, messages, export_format, all_paths=all_paths)
            yield name, content, conversation.updated_at
        # Written last, when every file is known; the index is a few hundred bytes per conversation.
        document = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "exported_at": iso_time(exported_at),
            "export_format": export_format,
            "conversations": index,
        }
        yield "index.json", (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode(), exported_at

    return zip_stream(files())


class _Pipe:
    """A write-only, unseekable file: ZipFile then writes data descriptors and never seeks back."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.pieces.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.pieces)
        self.pieces.clear()
        self.size = 0
        return out


def zip_stream(files: Iterable[tuple[str, bytes, datetime]]) -> Iterator[bytes]:
    """Deflate `(name, content, modified)` files into a zip, yielding it in pieces as it grows."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        try:
            for name, content, modified in files:
                entry = zipfile.ZipInfo(name, date_time=_zip_time(modified))
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, content)
                if pipe.size >= ZIP_PIECE_BYTES:
                    yield pipe.take()
        except Exception:
            # The status line went out with the first piece: an error can no
            # longer be a 500 (and Daphne leaves the client hanging if the
            # application raises mid-body). End with a valid zip that says so.
            logger.exception("export stopped early")
            archive.writestr(FAILED_ENTRY, FAILED_TEXT)
    yield pipe.take()  # the central directory, written by close()


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    utc = moment.astimezone(UTC)
    # The zip format cannot say a year before 1980.
    return max(utc.timetuple()[:6], (1980, 1, 1, 0, 0, 0))
