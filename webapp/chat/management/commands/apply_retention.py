"""`manage.py apply_retention [--dry-run]`: delete what retention and temporary chats say is due, now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from webapp.chat.retention import DRY_RUN_LISTED, retention_apply


class Command(BaseCommand):
    help = (
        "Delete temporary chats past their time and conversations past retention (RETENTION_DAYS, each "
        "person's choice), keeping those on legal hold. --dry-run only says what it would delete."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="delete nothing; list what would go")
        parser.add_argument("--batch-size", type=_positive, help="conversations per transaction")

    def handle(self, *args: object, dry_run: bool, batch_size: int | None, **options: object) -> None:
        report = retention_apply(dry_run=dry_run, batch_size=batch_size)
        if dry_run:
            for conversation_id in report.conversation_ids:
                self.stdout.write(f"would delete {conversation_id}")
            if report.conversations > DRY_RUN_LISTED:
                self.stdout.write(f"… and {report.conversations - DRY_RUN_LISTED} more")
        self.stdout.write(report.summary()[0].upper() + report.summary()[1:] + ".")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value
