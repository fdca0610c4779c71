"""Give a person a role from the shell: for scripts and the first administrator (docs/identity.md)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from webapp.accounts.models import Role
from webapp.accounts.services import AccountInputError, account_set_role


class Command(BaseCommand):
    help = "Set USERNAME's role: user, moderator or administrator (audited)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("username")
        parser.add_argument("role", help=", ".join(Role.values))

    def handle(self, *args: object, username: str, role: str, **options: object) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}; nothing was changed.")
        try:
            now = account_set_role(administrator=None, user=user, role=role)
        except AccountInputError as error:
            raise CommandError(f"{error.message} Nothing was changed.") from None
        self.stdout.write(f"{username} is now {now.value}.")
