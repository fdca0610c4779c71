"""LDAP_* settings turned into django-auth-ldap's AUTH_LDAP_*, checked when the settings load.

Imported by webapp/settings.py only when LDAP_SERVER_URI is set, so that a
site without LDAP needs no python-ldap. Junk refuses to start.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

GROUP_TYPES = ("groupOfNames", "groupOfUniqueNames", "posixGroup")


class LdapSettingsError(ValueError):
    """An LDAP_* value the site refuses to start with; the message says why."""


def _search(base: str, search_filter: str, what: str) -> object:
    import ldap
    from django_auth_ldap.config import LDAPSearch

    try:
        ldap.dn.str2dn(base)
    except ldap.DECODING_ERROR:
        raise LdapSettingsError(
            f"{what}: {base[:80]!r} is not a DN such as 'ou=people,dc=example,dc=com'."
        ) from None
    return LDAPSearch(base, ldap.SCOPE_SUBTREE, search_filter)


def ldap_settings(env: Mapping[str, str]) -> dict[str, object]:
    """django-auth-ldap's settings from the environment, or LdapSettingsError."""
    import ldap
    from django_auth_ldap.config import GroupOfNamesType, GroupOfUniqueNamesType, PosixGroupType

    uri = env.get("LDAP_SERVER_URI", "").strip()
    if any(urlsplit(part).scheme not in ("ldap", "ldaps") for part in uri.split()):
        raise LdapSettingsError(f"LDAP_SERVER_URI: {uri[:80]!r} must be ldap:// or ldaps:// URLs.")
    template = env.get("LDAP_USER_DN_TEMPLATE", "").strip()
    search_base = env.get("LDAP_USER_SEARCH_BASE", "").strip()
    if bool(template) == bool(search_base):
        raise LdapSettingsError(
            "LDAP needs one of LDAP_USER_DN_TEMPLATE or LDAP_USER_SEARCH_BASE (not both)."
        )
    if template and "%(user)s" not in template:
        raise LdapSettingsError(
            "LDAP_USER_DN_TEMPLATE must contain %(user)s, e.g. 'uid=%(user)s,ou=people,dc=…'."
        )
    try:
        timeout_s = int(env.get("LDAP_TIMEOUT_S") or 5)
    except ValueError:
        timeout_s = 0
    if not 1 <= timeout_s <= 120:
        raise LdapSettingsError("LDAP_TIMEOUT_S must be a whole number of seconds, 1 to 120.")
    found: dict[str, object] = {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_START_TLS": env.get("LDAP_START_TLS", "").strip().lower() in {"1", "true", "yes", "on"},
        "AUTH_LDAP_BIND_DN": env.get("LDAP_BIND_DN", ""),
        "AUTH_LDAP_BIND_PASSWORD": env.get("LDAP_BIND_PASSWORD", ""),
        # A directory that does not answer must not hold a log-in page for minutes.
        "AUTH_LDAP_CONNECTION_OPTIONS": {ldap.OPT_NETWORK_TIMEOUT: timeout_s, ldap.OPT_TIMEOUT: timeout_s},
        # Accounts are made and linked by webapp.accounts.sso, not by django-auth-ldap.
        "AUTH_LDAP_ALWAYS_UPDATE_USER": False,
        "LDAP_EMAIL_ATTR": (env.get("LDAP_EMAIL_ATTR") or "mail").strip().lower(),
        "LDAP_GROUPS_FOLLOW": False,
    }
    if template:
        found["AUTH_LDAP_USER_DN_TEMPLATE"] = template
    else:
        user_filter = (env.get("LDAP_USER_FILTER") or "(uid=%(user)s)").strip()
        if "%(user)s" not in user_filter:
            raise LdapSettingsError("LDAP_USER_FILTER must contain %(user)s, e.g. '(uid=%(user)s)'.")
        found["AUTH_LDAP_USER_SEARCH"] = _search(search_base, user_filter, "LDAP_USER_SEARCH_BASE")
    group_base = env.get("LDAP_GROUP_SEARCH_BASE", "").strip()
    if group_base:
        kind = (env.get("LDAP_GROUP_TYPE") or "groupOfNames").strip()
        types = {"groupOfNames": GroupOfNamesType, "groupOfUniqueNames": GroupOfUniqueNamesType}
        if kind not in GROUP_TYPES:
            raise LdapSettingsError(f"LDAP_GROUP_TYPE: {kind[:40]!r} is not one of {', '.join(GROUP_TYPES)}.")
        group_type = types.get(kind, PosixGroupType)
        found["AUTH_LDAP_GROUP_SEARCH"] = _search(
            group_base, f"(objectClass={kind})", "LDAP_GROUP_SEARCH_BASE"
        )
        found["AUTH_LDAP_GROUP_TYPE"] = group_type()
        found["LDAP_GROUPS_FOLLOW"] = True
    return found
