"""The readable exports of a conversation: Markdown and plain text, one path or every path (docs/exports.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from webapp.chat.models import Conversation, Message


def _readable_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def title_of(conversation: Conversation) -> str:
    return conversation.title or "New chat"


def _message_heading(message: Message) -> str:
    parts = ["User" if message.role == Message.Role.USER else "Assistant", _readable_time(message.created_at)]
    if message.role == Message.Role.ASSISTANT:
        if message.status != Message.Status.COMPLETE:
            parts.append(message.status)
        if message.completion_tokens:
            parts.append(f"{message.completion_tokens} tokens")
        if message.model_name:
            parts.append(message.model_name)
    return " · ".join(parts)


def markdown(conversation: Conversation, paths: Sequence[Sequence[Message]]) -> str:
    count = len({message.id for path in paths for message in path})
    lines = [
        f"# {title_of(conversation)}",
        "",
        f"Created {_readable_time(conversation.created_at)} · updated "
        f"{_readable_time(conversation.updated_at)} · {count} messages",
        "",
    ]
    if conversation.system_prompt:
        lines += ["## System prompt", "", conversation.system_prompt, ""]
    for number, path in enumerate(paths, start=1):
        if len(paths) > 1:
            lines += [f"## Path {number} of {len(paths)}", ""]
        for message in path:
            lines += ["---", "", f"### {_message_heading(message)}", "", message.content or "_(no text)_", ""]
            if message.error:
                lines += [f"_Error: {message.error}_", ""]
    return "\n".join(lines)


def plain_text(conversation: Conversation, paths: Sequence[Sequence[Message]]) -> str:
    title = title_of(conversation)
    count = len({message.id for path in paths for message in path})
    lines = [
        title,
        "=" * len(title),
        f"Created {_readable_time(conversation.created_at)}, updated {_readable_time(conversation.updated_at)}, "
        f"{count} messages",
        "",
    ]
    if conversation.system_prompt:
        lines += ["System prompt:", conversation.system_prompt, ""]
    for number, path in enumerate(paths, start=1):
        if len(paths) > 1:
            lines += [f"=== Path {number} of {len(paths)} ===", ""]
        for message in path:
            lines += [f"--- {_message_heading(message)}", message.content]
            if message.error:
                lines.append(f"(error: {message.error})")
            lines.append("")
    return "\n".join(lines)
