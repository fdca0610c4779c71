"""Making accounts: the sign-up policy (SIGNUP_MODE) and invitations, one path for every way in.

`account_register` is the one place an account is created: the sign-up
form, an invitation link, and single sign-on's first log-in all
come here, so the policy and the group assignment apply to each alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.utils import timezone

from webapp.accounts.audit import audit_record
from webapp.accounts.models import Account, Invitation
from webapp.accounts.signup_settings import check_domain

# How an account came to be (docs/identity.md).
FORM, INVITATION, COMMAND, SSO = "signup", "invitation", "command", "sso"
MAX_INVITATION_DAYS = 90


class SignupRefused(Exception):
    """Sign-up refused by the policy; `code` is stable, `message` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvitationRefused(SignupRefused):
    """An invitation link that is unknown, used or expired."""


# --- the policy --------------------------------------------------------------------------


def signup_open(*, source: str = FORM) -> bool:
    """Whether `source` may make an account at all: closed leaves invitations (and SSO) only."""
    return settings.SIGNUP_MODE != "closed" or source in (INVITATION, SSO)


def email_required() -> bool:
    return settings.SIGNUP_MODE == "domains"


def check_signup_email(email: object) -> str:
    """The e-mail a form sign-up gives; under `domains` it is required and must be at one of the domains."""
    if not isinstance(email, str):
        raise SignupRefused("invalid_email", "The e-mail address must be text.")
    email = email.strip()
    if not email_required():
        return email
    local, at, domain = email.rpartition("@")
    try:
        domain = check_domain(domain) if local and at else ""
    except ValueError:
        domain = ""
    if not domain:
        raise SignupRefused("invalid_email", "Enter your e-mail address (name@domain).")
    if domain not in settings.SIGNUP_DOMAINS:
        raise SignupRefused(
            "domain_not_allowed",
            f"Sign-up is open to addresses at {', '.join(settings.SIGNUP_DOMAINS)} only.",
        )
    if get_user_model().objects.filter(email__iexact=email).exists():
        raise SignupRefused("email_taken", "An account with this e-mail address already exists.")
    return email


@dataclass(frozen=True)
class Registered:
    user: AbstractBaseUser
    pending: bool  # waits for an administrator's approval (SIGNUP_MODE=approval)


def account_register(
    *,
    username: str,
    password: str | None,
    email: str = "",
    source: str = FORM,
    invitation_token: str | None = None,
    groups: tuple[Group, ...] = (),
) -> Registered:
    """Create an account as the policy allows; with a valid invitation, whatever the mode.

    The username and password are checked by the caller's form; `password`
    None (SSO) makes an account that cannot log in with a password.
    Raises SignupRefused (InvitationRefused) with nothing created.
    """
    with transaction.atomic():
        invitation = _claim(invitation_token) if invitation_token is not None else None
        if invitation is None:
            if not signup_open(source=source):
                raise SignupRefused(
                    "signup_closed", "Sign-up is closed: ask an administrator for an invitation."
                )
            if source in (FORM, SSO):  # SSO's address was verified by the provider (webapp.accounts.sso)
                email = check_signup_email(email)
        pending = invitation is None and source in (FORM, SSO) and settings.SIGNUP_MODE == "approval"
        user = get_user_model().objects.create_user(username=username, email=email, password=password)
        if pending:
            user.is_active = False
            user.save(update_fields=["is_active"])
        Account.objects.create(
            user=user,
            approval=Account.Approval.PENDING if pending else Account.Approval.APPROVED,
            created_via=INVITATION if invitation else source,
            approved_by=invitation.created_by if invitation else None,
            approved_at=timezone.now() if invitation else None,
        )
        joined = list(groups) + ([invitation.group] if invitation and invitation.group else [])
        if joined:
            user.groups.add(*joined)
        if invitation is not None:
            invitation.used_at, invitation.used_by = timezone.now(), user
            invitation.save(update_fields=["used_at", "used_by"])
    return Registered(user=user, pending=pending)


# --- invitations -------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(
    *, administrator: AbstractBaseUser, days: int, note: str = "", group: Group | None = None
) -> tuple[Invitation, str]:
    """A new invitation (audited) and its token, which is never stored nor shown again."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_INVITATION_DAYS:
        raise SignupRefused("invalid_days", f"An invitation lasts 1 to {MAX_INVITATION_DAYS} days.")
    limit = Invitation._meta.get_field("note").max_length
    note = " ".join(note.split())
    if len(note) > limit:
        raise SignupRefused("note_too_long", f"Keep the note under {limit} characters.")
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            token_hash=hash_token(token),
            note=note,
            group=group,
            created_by=administrator,
            expires_at=timezone.now() + dt.timedelta(days=days),
        )
        audit_record(
            actor=administrator,
            action="invitation_create",
            target_type="invitation",
            target_id=invitation.pk,
            detail={"note": note, "group": group.name if group else None, "days": days},
        )
    return invitation, token


def invitation_check(token: str) -> Invitation:
    """The usable invitation of `token`, or InvitationRefused saying why (unknown, used, expired)."""
    invitation = Invitation.objects.filter(token_hash=hash_token(token[:200])).first()
    return _usable(invitation)


def _claim(token: str) -> Invitation:
    # The row lock: two sign-ups racing on one link, one wins and the other is told it was used.
    locked = Invitation.objects.select_for_update().filter(token_hash=hash_token(token[:200])).first()
    return _usable(locked)


def _usable(invitation: Invitation | None) -> Invitation:
    if invitation is None:
        raise InvitationRefused(
            "invitation_unknown", "This invitation link is not valid: check that it is whole."
        )
    if invitation.used_at is not None:
        raise InvitationRefused(
            "invitation_used", "This invitation has already been used; ask for a new one."
        )
    if invitation.expires_at <= timezone.now():
        when = timezone.localtime(invitation.expires_at).strftime("%Y-%m-%d %H:%M %Z")
        raise InvitationRefused(
            "invitation_expired", f"This invitation expired on {when}; ask for a new one."
        )
    return invitation
