"""The chat pages: my conversations, a new one, one conversation."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from webapp.chat import services
from webapp.chat.selectors import (
    ConversationForbidden,
    ConversationNotFound,
    access_conversation,
    conversations_for_user,
    messages_of,
)
from webapp.workers import live_workers, model_summary

SIDEBAR_LIMIT = 200


@login_required
def conversation_list(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/page.html", _page_context(request, conversation=None))


@login_required
@require_POST
def conversation_new(request: HttpRequest) -> HttpResponse:
    conversation = services.conversation_create(owner=request.user)
    return redirect("chat:conversation", conversation_id=conversation.id)


@login_required
def conversation_page(request: HttpRequest, conversation_id: str) -> HttpResponse:
    try:
        conversation = access_conversation(request.user, conversation_id)
    except (ConversationNotFound, ConversationForbidden):
        # Somebody else's conversation looks exactly like a missing one.
        raise Http404("No such conversation.") from None
    return render(request, "chat/page.html", _page_context(request, conversation=conversation))


def _page_context(request: HttpRequest, *, conversation: object) -> dict[str, object]:
    return {
        "conversation": conversation,
        "messages": list(messages_of(conversation)) if conversation else [],
        "conversations": conversations_for_user(request.user)[:SIDEBAR_LIMIT],
        "model": model_summary(live_workers()),
        "max_message_chars": settings.MAX_MESSAGE_CHARS,
    }
