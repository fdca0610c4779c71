"""The log-in form: Django's, refusing banned accounts with a message that says so."""

from __future__ import annotations

from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from webapp.moderation.selectors import is_banned


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "banned": "This account has been banned by a moderator, so it can no longer log in.",
    }

    def confirm_login_allowed(self, user: AbstractBaseUser) -> None:
        # Called only once the password is right: a ban is never revealed to someone guessing.
        super().confirm_login_allowed(user)
        if is_banned(user):
            raise ValidationError(self.error_messages["banned"], code="banned")
