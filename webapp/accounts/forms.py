"""The log-in and sign-up forms: Django's, told about bans, approval, deactivation and the sign-up policy."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from webapp.accounts.models import Account
from webapp.accounts.signup import SignupRefused, check_signup_email, email_required
from webapp.moderation.selectors import is_banned


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "banned": "This account has been banned by a moderator, so it can no longer log in.",
        "pending": "Your account is waiting for an administrator's approval; you can log in once it is approved.",
        "deactivated": "This account has been deactivated by an administrator.",
        "declined": "An administrator has declined this sign-up, so the account cannot log in.",
    }

    def clean(self) -> dict[str, object]:
        try:
            return super().clean()
        except ValidationError as error:
            if error.code == "invalid_login":
                self._explain_inactive()
            raise

    def _explain_inactive(self) -> None:
        # Django's backend refuses inactive accounts as if the password were wrong; say why,
        # but only to someone who gave the right password: nothing is revealed to a guesser.
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if not username or not password:
            return
        users = get_user_model()
        user = users._default_manager.filter(**{users.USERNAME_FIELD: username}).first()
        if user is None or user.is_active or not user.check_password(password):
            return
        approval = Account.objects.filter(user=user).values_list("approval", flat=True).first()
        code = {Account.Approval.PENDING: "pending", Account.Approval.DECLINED: "declined"}.get(
            approval, "deactivated"
        )
        raise ValidationError(self.error_messages[code], code=code)

    def confirm_login_allowed(self, user: AbstractBaseUser) -> None:
        # Called only once the password is right: a ban is never revealed to someone guessing.
        super().confirm_login_allowed(user)
        if is_banned(user):
            raise ValidationError(self.error_messages["banned"], code="banned")


class SignupForm(UserCreationForm):
    """Django's sign-up form, with the e-mail address that SIGNUP_MODE=domains requires (and only then)."""

    email = forms.EmailField(required=False, max_length=254, label="E-mail address")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def __init__(self, *args: object, invited: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # An invitation lets anybody in, whatever the domain: only a form sign-up is asked.
        self.checks_email = email_required() and not invited
        if self.checks_email:
            self.fields["email"].required = True
            self.fields["email"].help_text = "Sign-up is open to some e-mail domains only."
        else:
            del self.fields["email"]

    def clean_email(self) -> str:
        try:
            return check_signup_email(self.cleaned_data.get("email") or "")
        except SignupRefused as refused:
            raise ValidationError(refused.message, code=refused.code) from None
