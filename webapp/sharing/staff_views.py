"""The moderators' page of live share links, and taking one down (audited)."""

from __future__ import annotations

from django.contrib import messages as flash
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.accounts.access import moderator_required
from webapp.sharing import services
from webapp.sharing.models import ShareLink
from webapp.sharing.selectors import links_for_staff

PAGE_SIZE = 50


@moderator_required
@require_GET
def live_links(request: HttpRequest) -> HttpResponse:
    page = Paginator(links_for_staff(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "sharing/staff.html", {"page": page, "current": "shares"})


@moderator_required
@require_POST
def take_down(request: HttpRequest, link_id: int) -> HttpResponse:
    link = services.share_link_take_down(
        moderator=request.user, link=get_object_or_404(ShareLink, pk=link_id)
    )
    flash.success(request, f"Took down the link to “{link.title}”.")
    return redirect("moderation:shares")
