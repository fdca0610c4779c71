"""`manage.py create_api_key USERNAME [--name NAME]`: print a new API key once, for scripts and set-up."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from webapp.api.services import ApiKeyError, api_key_create


class Command(BaseCommand):
    help = "Create an API key for a user and print it (it is shown only this once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line")

    def handle(self, *args: object, username: str, name: str, **options: object) -> None:
        owner = get_user_model().objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"No user {username!r}.")
        try:
            _, secret = api_key_create(owner=owner, name=name)
        except ApiKeyError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(secret)
