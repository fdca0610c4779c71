"""Export conversations for datasets: one JSON line per conversation, streamed to stdout or a file."""

from __future__ import annotations

import json
from datetime import date
from typing import IO, Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from webapp.chat import datasets
from webapp.chat.exports import (
    ExportTree,
    conversation_document,
    conversations_with_messages,
    finetune_messages,
    finetune_pairs,
)
from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import without_temporary


class Command(BaseCommand):
    help = (
        "Write conversations as JSON Lines: --format jsonl gives the chat fine-tuning format "
        '({"messages": [...]}, complete replies only); --format json one lossless conversation '
        "document per line; --format dpo preference pairs from versions of a reply (TRL's DPO format); "
        "--format rated every rated reply (TRL's KTO format). See docs/exports.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format", choices=["jsonl", "json", "dpo", "rated"], default="jsonl", dest="export_format"
        )
        parser.add_argument("--user", help="only this username's conversations")
        parser.add_argument("--since", type=_date, help="created on or after this day (YYYY-MM-DD, UTC)")
        parser.add_argument("--until", type=_date, help="created on or before this day (YYYY-MM-DD, UTC)")
        parser.add_argument(
            "--exclude-blocked", action="store_true", help="leave out conversations with any blocked message"
        )
        parser.add_argument(
            "--with-moderation", action="store_true", help="add each message's moderation events"
        )
        parser.add_argument(
            "--all-paths",
            action="store_true",
            help="jsonl: a line for every path through each conversation's tree, not only the path shown",
        )
        parser.add_argument("--output", help="a file to write (default: stdout)")

    def handle(self, *args: object, **options: Any) -> None:
        # Checked before anything is written, so a dataset is never half-annotated.
        events = _moderation_events() if options["with_moderation"] else None
        conversations = without_temporary(Conversation.objects.all())
        if options["user"]:
            owner = (
                get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: options["user"]}).first()
            )
            if owner is None:
                raise CommandError(f"No user named {options['user']!r}.")
            conversations = conversations.filter(owner=owner)
        if options["since"]:
            conversations = conversations.filter(created_at__date__gte=options["since"])
        if options["until"]:
            conversations = conversations.filter(created_at__date__lte=options["until"])
        if options["exclude_blocked"]:
            conversations = conversations.exclude(messages__status=Message.Status.BLOCKED)

        if options["output"]:
            with open(options["output"], "w", encoding="utf-8", newline="\n") as output:
                written = self._write(
                    conversations, options["export_format"], events, output, options["all_paths"]
                )
            self.stderr.write(f"Exported {written} conversations to {options['output']}.")
        else:
            self._write(conversations, options["export_format"], events, self.stdout, options["all_paths"])

    def _write(
        self,
        conversations: models.QuerySet[Conversation],
        export_format: str,
        events: datasets.ModerationAnnotations | None,
        output: IO[str],
        all_paths: bool,
    ) -> int:
        written = 0
        for conversation in conversations_with_messages(conversations):
            messages = conversation.export_messages
            if export_format == "json":
                line = conversation_document(conversation, messages)
                if events is not None:
                    shown = list(ExportTree.of(conversation, messages).messages.values())
                    by_message = events.for_messages(shown)
                    for entry in line["messages"]:
                        entry["moderation"] = by_message.get(entry["id"], [])
                self._line(output, line)
                written += 1
                continue
            if export_format in ("dpo", "rated"):
                lines = self._write_dataset(conversation, messages, export_format, events, output)
                written += lines > 0
                continue
            lines = 0
            for path in ExportTree.of(conversation, messages).paths(all_paths=all_paths):
                turns = finetune_messages(conversation, path)
                if not turns:
                    continue  # nothing to learn from: no question with a complete reply
                line: dict[str, Any] = {"messages": turns}
                if events is not None:
                    # A list beside "messages", turn for turn (the system turn has none).
                    kept = [message for pair in finetune_pairs(path) for message in pair]
                    by_message = events.for_messages(kept)
                    line["moderation"] = [[]] * (len(turns) - len(kept)) + [
                        by_message.get(str(message.id), []) for message in kept
                    ]
                self._line(output, line)
                lines += 1
            written += lines > 0
        return written

    def _write_dataset(
        self,
        conversation: Conversation,
        messages: list[Message],
        export_format: str,
        events: datasets.ModerationAnnotations | None,
        output: IO[str],
    ) -> int:
        """Preference pairs or rated replies of one conversation (webapp/chat/datasets.py)."""
        lines = datasets.dataset_lines(conversation, messages, export_format, moderation=events)
        for line in lines:
            self._line(output, line)
        return len(lines)

    @staticmethod
    def _line(output: IO[str], line: dict[str, Any]) -> None:
        output.write(json.dumps(line, ensure_ascii=False, cls=DjangoJSONEncoder) + "\n")


def _moderation_events() -> datasets.ModerationAnnotations:
    try:
        return datasets.moderation_annotations()
    except LookupError as missing:
        raise CommandError(f"Moderation records are not available: {missing}") from None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a day in the form YYYY-MM-DD.") from None
