"""Talking to OpenID Connect providers, through Authlib: the redirect there and the checked answer back.

Authlib does the protocol: discovery, state and nonce kept in the session,
the code flow with PKCE and the client secret, and the ID token's signature
(the provider's published keys), issuer, audience, expiry and nonce. This
module only turns each way that can fail into an `SsoRefused` with a page's
words, so that a bad answer or a provider that is down is never a 500.
"""

from __future__ import annotations

import functools
import logging

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.django_client import DjangoOAuth2App, OAuth
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError

from webapp.accounts.oidc_settings import OidcProvider
from webapp.accounts.sso import SsoRefused

log = logging.getLogger(__name__)


def provider_by_id(provider_id: str) -> OidcProvider | None:
    return next((provider for provider in settings.OIDC_PROVIDERS if provider.id == provider_id), None)


@functools.lru_cache(maxsize=32)
def _client(provider: OidcProvider, timeout_s: int) -> DjangoOAuth2App:
    # One client per provider and process: it keeps the discovery document and the keys it fetched.
    registry = OAuth()
    return registry.register(
        name=provider.id,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        server_metadata_url=provider.metadata_url,
        client_kwargs={"scope": provider.scopes, "timeout": timeout_s, "code_challenge_method": "S256"},
    )


def client_for(provider: OidcProvider) -> DjangoOAuth2App:
    return _client(provider, settings.OIDC_TIMEOUT_S)


def authorize_redirect(request: HttpRequest, provider: OidcProvider, *, redirect_uri: str) -> HttpResponse:
    """The redirect to the provider's sign-in page; SsoRefused if it does not answer."""
    client = client_for(provider)
    try:
        issuer = client.load_server_metadata().get("issuer", "")
        if issuer.rstrip("/") != provider.issuer.rstrip("/"):
            # OpenID Connect Discovery: the document must name the issuer it was fetched for, else
            # its keys and endpoints may be somebody else's (a wrong URL, a proxy's page).
            log.error("SSO %s: discovery names issuer %r, not %r", provider.id, issuer[:200], provider.issuer)
            raise SsoRefused(
                "provider_misconfigured",
                f"{provider.label} is not set up correctly here (its issuer differs): tell an administrator.",
                502,
            )
        return client.authorize_redirect(request, redirect_uri)
    except (requests.RequestException, ValueError, KeyError, AttributeError) as error:
        raise _unavailable(provider, error) from None


def fetch_claims(request: HttpRequest, provider: OidcProvider) -> dict[str, object]:
    """The provider's answer on the callback, checked: the ID token's claims, or SsoRefused saying why."""
    try:
        token = client_for(provider).authorize_access_token(request)
    except MismatchingStateError:
        raise SsoRefused(
            "bad_state",
            "This sign-in was not started from this browser, or was already used: start again.",
            400,
        ) from None
    except OAuthError as error:
        # The provider sent the browser back with an error (the person said no, a misconfiguration).
        raise SsoRefused(
            "provider_error",
            f"{provider.label} refused the sign-in: {error.description or error.error}.",
            400,
        ) from None
    except ExpiredTokenError:
        raise SsoRefused(
            "token_expired", f"{provider.label}'s answer has expired: start again.", 400
        ) from None
    except ClaimError as error:  # a wrong or missing iss, aud, azp, nonce, sub
        raise SsoRefused(
            "invalid_token",
            f"{provider.label}'s answer was not meant for this site ({error.claim}): nothing was changed.",
            400,
        ) from None
    except (JoseError, AuthlibBaseError) as error:
        log.warning("SSO %s: token refused: %r", provider.id, error)
        raise SsoRefused(
            "invalid_token", f"{provider.label}'s answer could not be checked: nothing was changed.", 400
        ) from None
    except (requests.RequestException, ValueError, KeyError) as error:
        raise _unavailable(provider, error) from None
    claims = token.get("userinfo")
    if not claims:
        raise SsoRefused("invalid_token", f"{provider.label} sent no ID token: check its scopes.", 400)
    return dict(claims)


def _unavailable(provider: OidcProvider, error: Exception) -> SsoRefused:
    log.warning("SSO %s: provider unavailable: %r", provider.id, error)
    return SsoRefused(
        "provider_unavailable",
        f"{provider.label} does not answer right now: try again in a few minutes.",
        502,
    )
