"""Single sign-on's two pages: off to the provider, and back (docs/identity.md)."""

from __future__ import annotations

from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from webapp.accounts import oidc_client
from webapp.accounts.oidc_settings import OidcProvider
from webapp.accounts.sso import SsoRefused, claims_from, sso_sign_in
from webapp.accounts.views import BACKEND


def _provider(provider_id: str) -> OidcProvider:
    provider = oidc_client.provider_by_id(provider_id)
    if provider is None:
        raise Http404("No such sign-in provider.")
    return provider


@require_GET
def sso_begin(request: HttpRequest, provider_id: str) -> HttpResponse:
    """The redirect to the provider; the state and nonce that come back are kept in the session."""
    provider = _provider(provider_id)
    if request.user.is_authenticated:
        return redirect("chat:index")
    redirect_uri = request.build_absolute_uri(reverse("sso_callback", args=[provider.id]))
    try:
        return oidc_client.authorize_redirect(request, provider, redirect_uri=redirect_uri)
    except SsoRefused as refused:
        return _refused(request, provider, refused)


@require_GET
def sso_callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    provider = _provider(provider_id)
    try:
        claims = claims_from(provider, oidc_client.fetch_claims(request, provider))
        signed_in = sso_sign_in(provider=provider, claims=claims)
    except SsoRefused as refused:
        return _refused(request, provider, refused)
    login(request, signed_in.user, backend=BACKEND)
    return redirect("chat:index")


def _refused(request: HttpRequest, provider: OidcProvider, refused: SsoRefused) -> HttpResponse:
    if refused.code == "pending":
        return render(request, "accounts/pending.html", {"username": ""}, status=403)
    context = {
        "heading": f"Signing in with {provider.label} failed",
        "code": refused.code,
        "reason": refused.message,
    }
    return render(request, "accounts/refused.html", context, status=refused.status)
