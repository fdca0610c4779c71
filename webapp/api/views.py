"""The API keys settings page: create (the key is shown once), list, revoke."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from webapp.accounts.access import limits_for
from webapp.api import services
from webapp.api.models import ApiKey
from webapp.api.selectors import keys_of

# The session key that carries a new key from the POST to the page after the redirect.
NEW_KEY = "api_new_key"


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {"api_allowed": limits_for(request.user).api_allowed}
    status = 200
    if not context["api_allowed"]:
        # The list stays, so that old keys can still be revoked; no new one is made.
        context["error"], status = "Your account's groups do not allow API keys; ask an administrator.", 403
    elif request.method == "POST":
        try:
            api_key, secret = services.api_key_create(owner=request.user, name=request.POST.get("name"))
        except services.ApiKeyError as error:
            context["error"], status = str(error), 400
        else:
            # Post/redirect/get: a reload shows the list, and never makes a second key.
            request.session[NEW_KEY] = {"name": api_key.name, "secret": secret}
            return redirect("api:keys")
    if request.method == "GET":
        # Shown once: popped from the session as it is shown.
        context["created"] = request.session.pop(NEW_KEY, None)
    context["keys"] = keys_of(request.user)
    response = render(request, "api/keys.html", context, status=status)
    # The one page that shows a key: never from a cache.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = ApiKey.objects.filter(pk=key_id, owner=request.user).first()
    if api_key is None:
        raise Http404("No such key.")
    services.api_key_revoke(api_key=api_key)
    return redirect("api:keys")
