"""OIDC_PROVIDERS and LOCAL_LOGIN, checked when the settings load: junk refuses to start.

Plain Python: webapp/settings.py imports it before Django is set up.
`OIDC_PROVIDERS` is a JSON list, one object per provider (docs/identity.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_KEYS = {"id", "label", "issuer", "client_id", "client_secret", "scopes", "groups_claim"}
_REQUIRED = ("id", "issuer", "client_id", "client_secret")


class OidcSettingsError(ValueError):
    """An OIDC_PROVIDERS or LOCAL_LOGIN the site refuses to start with; the message says why."""


@dataclass(frozen=True)
class OidcProvider:
    """One OpenID Connect provider people can sign in with."""

    id: str  # in the URLs (/accounts/sso/<id>/) and in each linked identity
    label: str  # the button: "Sign in with <label>"
    issuer: str  # discovery at <issuer>/.well-known/openid-configuration; the ID token's `iss`
    client_id: str
    client_secret: str
    scopes: str = "openid email profile"
    groups_claim: str = ""  # empty: groups do not follow the provider

    @property
    def metadata_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def _provider(index: int, item: object, *, allow_http: bool) -> OidcProvider:
    where = f"OIDC_PROVIDERS[{index}]"
    if not isinstance(item, dict):
        raise OidcSettingsError(f"{where}: each provider is an object such as {{'id': 'keycloak', ...}}.")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise OidcSettingsError(
            f"{where}: unknown key {unknown[0][:40]!r}; the keys are {', '.join(sorted(_KEYS))}."
        )
    if any(not isinstance(value, str) for value in item.values()):
        raise OidcSettingsError(f"{where}: every value is a string.")
    for key in _REQUIRED:
        if not item.get(key, "").strip():
            raise OidcSettingsError(f"{where}: {key!r} is required.")
    provider_id = item["id"].strip()
    if not _ID.match(provider_id):
        raise OidcSettingsError(
            f"{where}: id {provider_id[:40]!r} must be lower-case letters, digits and hyphens (at most 40)."
        )
    issuer = item["issuer"].strip()
    url = urlsplit(issuer)
    schemes = ("https", "http") if allow_http else ("https",)
    if url.scheme not in schemes or not url.hostname or url.query or url.fragment:
        raise OidcSettingsError(
            f"{where}: issuer {issuer[:80]!r} must be an https:// URL without query or fragment"
            + ("." if allow_http else " (http:// only with DEBUG=1).")
        )
    scopes = " ".join(item.get("scopes", "openid email profile").split())
    if "openid" not in scopes.split():
        raise OidcSettingsError(f"{where}: scopes {scopes[:80]!r} must include 'openid'.")
    return OidcProvider(
        id=provider_id,
        label=item.get("label", "").strip() or provider_id,
        issuer=issuer,
        client_id=item["client_id"].strip(),
        client_secret=item["client_secret"].strip(),
        scopes=scopes,
        groups_claim=item.get("groups_claim", "").strip(),
    )


def check_oidc_settings(raw: str, *, local_login: bool, allow_http: bool) -> tuple[OidcProvider, ...]:
    """The providers, in order, or OidcSettingsError naming what is wrong."""
    if not raw.strip():
        providers: tuple[OidcProvider, ...] = ()
    else:
        try:
            items = json.loads(raw)
        except ValueError as error:
            raise OidcSettingsError(f"OIDC_PROVIDERS is not JSON: {error}.") from None
        if not isinstance(items, list):
            raise OidcSettingsError("OIDC_PROVIDERS must be a JSON list of provider objects.")
        providers = tuple(_provider(index, item, allow_http=allow_http) for index, item in enumerate(items))
    ids = [provider.id for provider in providers]
    if len(set(ids)) != len(ids):
        raise OidcSettingsError("OIDC_PROVIDERS: two providers share an id.")
    if not local_login and not providers:
        raise OidcSettingsError(
            "LOCAL_LOGIN=0 needs OIDC_PROVIDERS (or LDAP_SERVER_URI): nobody could log in."
        )
    return providers
