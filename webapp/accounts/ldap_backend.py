"""LDAP sign-in: django-auth-ldap checks the password against the directory; accounts are ours.

django-auth-ldap binds as the person (or searches, then binds) and reads
their entry and groups. Who they are here is then decided exactly as for
single sign-on (`webapp.accounts.sso.sso_sign_in`): the entry's DN is the
subject, its address (the directory's, so vouched for) may link an
existing account, and a new account goes through `account_register`
under the sign-up policy. Its groups follow the directory's when
LDAP_GROUP_SEARCH_BASE is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.dispatch import receiver
from django.http import HttpRequest
from django_auth_ldap.backend import LDAPBackend, ldap_error

from webapp.accounts.sso import SsoClaims, SsoRefused, sso_sign_in


@dataclass(frozen=True)
class Directory:
    id: str = "ldap"
    label: str = "the directory"


DIRECTORY = Directory()


class DirectoryBackend(LDAPBackend):
    """The log-in form's password, checked by the directory; first in AUTHENTICATION_BACKENDS."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: object,
    ) -> AbstractBaseUser | None:
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None and not settings.LOCAL_LOGIN:
            # LOCAL_LOGIN=0: the directory's word is final; Django's password backend is never asked.
            raise PermissionDenied
        return user

    def get_or_build_user(self, username: str, ldap_user: object) -> tuple[AbstractBaseUser, bool]:
        attrs = ldap_user.attrs
        email = next(iter(attrs.get(settings.LDAP_EMAIL_ATTR, [])), "")
        groups = tuple(sorted(ldap_user.group_names)) if settings.LDAP_GROUPS_FOLLOW else None
        claims = SsoClaims(
            subject=ldap_user.dn.lower(),
            email=email.strip()[:254],
            email_verified=True,  # the organisation's directory: its addresses are its own
            username_hint=username,
            groups=groups,
        )
        try:
            signed_in = sso_sign_in(provider=DIRECTORY, claims=claims)
        except SsoRefused as refused:
            # The password was right: say why (waiting, deactivated, banned), as the local log-in does.
            raise ValidationError(refused.message, code=refused.code) from None
        return signed_in.user, False


@receiver(ldap_error)
def _directory_unavailable(sender: object, context: str, exception: Exception, **kwargs: object) -> None:
    # django-auth-ldap logs a directory that is down and answers "wrong password"; say what it is.
    import ldap

    if context == "authenticate" and isinstance(exception, ldap.SERVER_DOWN | ldap.TIMEOUT):
        raise ValidationError(
            "The directory does not answer right now: try again in a few minutes.", code="ldap_down"
        )
