"""Share links over HTTP: make one from the chat page, a person's list with revoke, the shared page, continuing it.

Thin: load through the one access check (the conversation's, or the
link's by token), call one service, render or redirect. An unknown,
revoked, taken-down or deleted link is the same 404 for everybody.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webapp.chat.selectors import ConversationForbidden, ConversationNotFound, access_conversation
from webapp.sharing import services
from webapp.sharing.models import ShareLink
from webapp.sharing.selectors import (
    ShareLinkNeedsSignIn,
    ShareLinkNotFound,
    access_share_link,
    links_of,
    shared_messages,
)

# The session key that carries a new link's URL to the list, once (the token is not stored).
NEW_LINK_KEY = "sharing_new_link"


def refused(request: HttpRequest, error: services.ShareInputError) -> HttpResponse:
    return render(request, "sharing/refused.html", {"error": error}, status=error.status)


@login_required
@require_POST
def share_create(request: HttpRequest, conversation_id: str) -> HttpResponse:
    try:
        conversation = access_conversation(request.user, conversation_id)
    except (ConversationNotFound, ConversationForbidden):
        raise Http404("No such conversation.") from None
    try:
        link, token = services.share_link_create(
            owner=request.user, conversation=conversation, audience=request.POST.get("audience")
        )
    except services.ShareInputError as error:
        return refused(request, error)
    request.session[NEW_LINK_KEY] = {
        "id": link.pk,
        "url": request.build_absolute_uri(reverse("sharing:page", args=[token])),
    }
    return redirect("sharing:mine")


@login_required
@require_GET
def my_links(request: HttpRequest) -> HttpResponse:
    new_link = request.session.pop(NEW_LINK_KEY, None)
    response = render(request, "sharing/mine.html", {"links": links_of(request.user), "new_link": new_link})
    response["Cache-Control"] = "no-store"  # the new link's URL is on it, once
    return response


@login_required
@require_POST
def link_revoke(request: HttpRequest, link_id: int) -> HttpResponse:
    # Somebody else's link looks exactly like a missing one.
    services.share_link_revoke(link=get_object_or_404(ShareLink, pk=link_id, owner=request.user))
    return redirect("sharing:mine")


def _noindex(response: HttpResponse) -> HttpResponse:
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@require_GET
def shared_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = access_share_link(request.user, token)
    except ShareLinkNotFound:
        return _noindex(render(request, "sharing/not_found.html", status=404))
    except ShareLinkNeedsSignIn:
        return _noindex(redirect_to_login(request.get_full_path()))
    context = {"link": link, "shared": shared_messages(link), "token": token}
    response = _noindex(render(request, "sharing/page.html", context))
    # The token is in the URL: links out must not carry it (no-referrer would send `Origin: null`
    # with the page's own Continue form, which the CSRF check refuses).
    response["Referrer-Policy"] = "same-origin"
    return response


@login_required
@require_POST
def shared_continue(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = access_share_link(request.user, token)
    except (ShareLinkNotFound, ShareLinkNeedsSignIn):
        raise Http404("No such link.") from None
    copy = services.share_link_continue(link=link, user=request.user)
    return redirect("chat:conversation", conversation_id=copy.id)
