"""Single sign-on's side of accounts: from a provider's verified claims to a person (docs/identity.md).

The providers are OpenID Connect's (webapp.accounts.oidc_client) and the
LDAP directory (webapp.accounts.ldap_backend), which both vouch for who
someone is; the rules below are the same for both.

The token has been checked by then (webapp.accounts.oidc_client); this
module decides who the claims are: the person already linked to the
provider's `sub`; else an account with the same e-mail, only when the
provider says the address is verified; else a new account made by
`signup.account_register` under the sign-up policy. Groups follow the
provider's group claim where one is configured.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.accounts.models import Account, SsoIdentity
from webapp.accounts.oidc_settings import OidcProvider
from webapp.accounts.services import groups_replace
from webapp.accounts.signup import SSO, SignupRefused, account_register, email_required
from webapp.moderation.selectors import is_banned

log = logging.getLogger(__name__)

_NOT_USERNAME = re.compile(r"[^\w.@+-]")
MAX_GROUP_NAMES = 200


class IdentitySource(Protocol):
    """Who vouches for the person: an OIDC provider, or the LDAP directory."""

    @property
    def id(self) -> str: ...  # SsoIdentity.provider

    @property
    def label(self) -> str: ...  # in the pages' words


class SsoRefused(Exception):
    """A sign-in refused, with nothing changed; `code` is stable, `message` is for people, `status` HTTP."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class SsoClaims:
    """What we use of an ID token (and userinfo): who, their address, and their groups if the claim came."""

    subject: str
    email: str
    email_verified: bool
    username_hint: str
    groups: tuple[str, ...] | None  # None: the claim did not come, so groups are left as they are


@dataclass(frozen=True)
class SsoSignedIn:
    user: AbstractBaseUser
    created: bool


def claims_from(provider: OidcProvider, claims: Mapping[str, object]) -> SsoClaims:
    """The claims we use, or SsoRefused for a token without a usable `sub`."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        raise SsoRefused("invalid_token", f"{provider.label} sent no usable subject (sub).", 400)
    email = claims.get("email")
    email = email.strip()[:254] if isinstance(email, str) else ""
    # Some providers send the flag as the string "true".
    verified = claims.get("email_verified") in (True, "true")
    hint = next(
        (
            value
            for key in ("preferred_username", "email")
            if isinstance(value := claims.get(key), str) and value
        ),
        "",
    )
    groups = None
    if provider.groups_claim and provider.groups_claim in claims:
        raw = claims[provider.groups_claim]
        raw = raw if isinstance(raw, list) else []
        groups = tuple(dict.fromkeys(name for name in raw[:MAX_GROUP_NAMES] if isinstance(name, str)))
    return SsoClaims(subject=subject, email=email, email_verified=verified, username_hint=hint, groups=groups)


def sso_sign_in(*, provider: IdentitySource, claims: SsoClaims) -> SsoSignedIn:
    """The person these claims are, linked or made now; SsoRefused (nothing changed) if they may not log in."""
    try:
        return _sign_in(provider, claims)
    except IntegrityError:
        # Two first sign-ins of one person at once (two tabs): the other made the identity
        # (or took the username) first; this one now finds it.
        return _sign_in(provider, claims)


def _sign_in(provider: IdentitySource, claims: SsoClaims) -> SsoSignedIn:
    with transaction.atomic():
        identity = (
            SsoIdentity.objects.select_for_update()
            .select_related("user")
            .filter(provider=provider.id, subject=claims.subject)
            .first()
        )
        created = False
        if identity is None:
            user = _matched_by_email(provider, claims)
            if user is None:
                user, created = _register(provider, claims), True
            identity = SsoIdentity.objects.create(user=user, provider=provider.id, subject=claims.subject)
        identity.last_login_at = timezone.now()
        identity.save(update_fields=["last_login_at"])
        if claims.groups is not None:
            _groups_follow(identity.user, provider, claims.groups)
    _check_may_log_in(identity.user)
    return SsoSignedIn(user=identity.user, created=created)


def _matched_by_email(provider: IdentitySource, claims: SsoClaims) -> AbstractBaseUser | None:
    if not claims.email:
        return None
    matches = list(get_user_model().objects.filter(email__iexact=claims.email)[:2])
    if not matches:
        return None
    if not claims.email_verified:
        # Anybody can type any address at some providers: an unverified one never takes over an account.
        raise SsoRefused(
            "email_unverified",
            f"An account with this e-mail address already exists, and {provider.label} does not say "
            "the address is verified. Verify it there, or log in with your password.",
        )
    if len(matches) > 1:
        raise SsoRefused(
            "email_ambiguous",
            "More than one account has this e-mail address: ask an administrator to link yours.",
        )
    return matches[0]


def _register(provider: IdentitySource, claims: SsoClaims) -> AbstractBaseUser:
    # Under SIGNUP_MODE=domains the address is the ticket in: the provider must vouch for it.
    if claims.email and not claims.email_verified and email_required():
        raise SsoRefused(
            "email_unverified", f"Sign-up needs an e-mail address that {provider.label} says is verified."
        )
    try:
        registered = account_register(
            username=_free_username(claims.username_hint),
            password=None,
            # Only an address the provider vouches for is kept: another provider's verified sign-in
            # would otherwise be linked to this account by it.
            email=claims.email if claims.email_verified else "",
            source=SSO,
        )
    except SignupRefused as refused:
        raise SsoRefused(refused.code, refused.message) from None
    return registered.user


def _free_username(hint: str) -> str:
    """A username nobody has, from the provider's: never an existing account's (that would be a takeover)."""
    users = get_user_model()
    base = _NOT_USERNAME.sub("", hint.split("@")[0] if "@" in hint else hint)[:140] or "user"
    name, n = base, 1
    while users.objects.filter(username__iexact=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _groups_follow(user: AbstractBaseUser, provider: IdentitySource, names: tuple[str, ...]) -> None:
    groups = list(Group.objects.filter(name__in=names))
    unknown = sorted(set(names) - {group.name for group in groups})
    if unknown:
        # Never created: a provider must not be able to invent groups, and with them limits.
        log.warning("SSO %s: unknown groups ignored for user %s: %s", provider.id, user.pk, unknown[:20])
    if set(user.groups.values_list("pk", flat=True)) == {group.pk for group in groups}:
        return
    groups_replace(actor=user, user=user, groups=groups, via=f"sso:{provider.id}", ignored=unknown[:20])


def _check_may_log_in(user: AbstractBaseUser) -> None:
    if not user.is_active:
        approval = Account.objects.filter(user=user).values_list("approval", flat=True).first()
        if approval == Account.Approval.PENDING:
            raise SsoRefused(
                "pending",
                "Your account is waiting for an administrator's approval; you can log in once it is approved.",
            )
        if approval == Account.Approval.DECLINED:
            raise SsoRefused(
                "declined", "An administrator has declined this sign-up, so the account cannot log in."
            )
        raise SsoRefused("deactivated", "This account has been deactivated by an administrator.")
    if is_banned(user):
        raise SsoRefused("banned", "This account has been banned by a moderator, so it can no longer log in.")
