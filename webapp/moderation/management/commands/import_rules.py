"""`manage.py import_rules FILE`: load moderation rules from a JSON list; idempotent, all or nothing."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from webapp.moderation.models import Rule
from webapp.moderation.rules_file import RulesFileError, parse_rules


class Command(BaseCommand):
    help = 'Load moderation rules from a JSON list of {"category", "action", "kind", "pattern"}.'

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("file", type=Path)

    def handle(self, *args: object, file: Path, **options: object) -> None:
        try:
            entries = parse_rules(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"{file}: cannot read it: {error}") from None
        except RulesFileError as error:
            raise CommandError(f"{file}: {error} Nothing was imported.") from None
        created = 0
        with transaction.atomic():
            for entry in entries:
                spec = entry.spec
                _, was_created = Rule.objects.update_or_create(
                    kind=spec.kind,
                    pattern=spec.pattern,
                    defaults={"category": spec.category, "action": spec.action.value, "enabled": True},
                )
                created += was_created
        self.stdout.write(f"{len(entries)} rules read: {created} new, {len(entries) - created} updated.")
