"""The chat pages: my conversations, a new one, one conversation; renaming, deleting, searching."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from webapp.accounts.access import limits_for
from webapp.chat import services
from webapp.chat.feedback import ratings_of, reasons_for_page
from webapp.chat.models import Conversation, Folder
from webapp.chat.search import MAX_QUERY_CHARS, SearchFilters, search_conversations
from webapp.chat.selectors import (
    ConversationForbidden,
    ConversationNotFound,
    FolderNotFound,
    access_conversation,
    folders_of,
    listed_conversations,
    messages_of,
    optional_folder,
    sidebar_groups,
)
from webapp.chat.services import ChatInputError
from webapp.workers import live_workers, model_summary

SIDEBAR_LIMIT = 50
EXPORT_FORMAT_LABELS = [
    ("json", "JSON (lossless)"),
    ("md", "Markdown"),
    ("txt", "Plain text"),
    ("jsonl", "JSONL (fine-tuning)"),
    ("html", "Printable page"),
]
PAGE_SIZE = 50


@login_required
def conversation_list(request: HttpRequest) -> HttpResponse:
    """Every conversation, pinned first; `?folder=<id>` one folder's, `?archived=1` the archive."""
    folder = _folder_filter(request)
    archived = request.GET.get("archived") == "1"
    listed = listed_conversations(request.user, folder=folder, archived=archived)
    page = Paginator(listed, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        **_page_context(request, conversation=None),
        "page": page,
        "list_folder": folder,
        "list_archived": archived,
    }
    return render(request, "chat/page.html", context)


@login_required
@require_POST
def conversation_new(request: HttpRequest) -> HttpResponse:
    # The sidebar's "Temporary chat" button posts temporary=1.
    temporary = request.POST.get("temporary") == "1"
    conversation = services.conversation_create(owner=request.user, temporary=temporary)
    return redirect("chat:conversation", conversation_id=conversation.id)


@login_required
def conversation_page(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = _owned(request, conversation_id)
    return render(request, "chat/page.html", _page_context(request, conversation=conversation))


@login_required
@require_POST
def conversation_rename(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """Rename from the sidebar: JSON for the page's script, a redirect for a plain form."""
    conversation = _owned(request, conversation_id)
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    try:
        services.conversation_rename(conversation=conversation, title=request.POST.get("title"))
    except ChatInputError as error:
        if wants_json:
            return JsonResponse({"code": error.code, "message": error.message}, status=400)
        flash.error(request, error.message)
    else:
        if wants_json:
            return JsonResponse({"title": conversation.title})
    return redirect("chat:conversation", conversation_id=conversation.id)


@login_required
@require_http_methods(["GET", "POST"])
def conversation_delete(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """GET asks for confirmation; POST deletes."""
    conversation = _owned(request, conversation_id)
    if request.method == "GET":
        return render(request, "chat/delete.html", {"conversation": conversation})
    services.conversation_delete(conversation=conversation)
    flash.success(request, f"Deleted “{conversation}”.")
    return redirect("chat:index")


@login_required
def conversation_search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:MAX_QUERY_CHARS]
    archived = {"only": True, "include": None}.get(request.GET.get("archived", ""), False)
    filters = SearchFilters(
        folder=_folder_filter(request), pinned_only=request.GET.get("pinned") == "1", archived=archived
    )
    context = {
        **_page_context(request, conversation=None),
        "query": query,
        "filters": filters,
        "hits": search_conversations(request.user, query, filters),
    }
    return render(request, "chat/search.html", context)


def _owned(request: HttpRequest, conversation_id: str) -> Conversation:
    try:
        return access_conversation(request.user, conversation_id)
    except (ConversationNotFound, ConversationForbidden):
        # Somebody else's conversation looks exactly like a missing one.
        raise Http404("No such conversation.") from None


def _folder_filter(request: HttpRequest) -> Folder | None:
    """The `?folder=` of a list or a search: one of the person's folders, or a 404."""
    try:
        return optional_folder(request.user, request.GET.get("folder", ""))
    except FolderNotFound:
        raise Http404("No such folder.") from None


def _page_context(request: HttpRequest, *, conversation: Conversation | None) -> dict[str, object]:
    recent = list(listed_conversations(request.user)[: SIDEBAR_LIMIT + 1])
    folders = list(folders_of(request.user))
    chat_messages = messages_of(conversation) if conversation else []
    ratings = ratings_of(request.user, chat_messages)
    for message in chat_messages:
        message.rating = ratings.get(message.id, "")
    return {
        "conversation": conversation,
        "chat_messages": chat_messages,
        "conversations": recent[:SIDEBAR_LIMIT],
        "folders": folders,
        "sidebar": sidebar_groups(recent[:SIDEBAR_LIMIT], folders),
        "more_conversations": len(recent) > SIDEBAR_LIMIT,
        "model": model_summary(live_workers()),
        "max_message_chars": settings.MAX_MESSAGE_CHARS,
        "temporary_chat_hours": settings.TEMPORARY_CHAT_HOURS,
        "export_formats": EXPORT_FORMAT_LABELS,
        "chat_settings": conversation.chat_settings() if conversation else None,
        "feedback_reasons": reasons_for_page(),
        "limits": {
            "max_message_chars": settings.MAX_MESSAGE_CHARS,
            "export_formats": EXPORT_FORMAT_LABELS,
            "max_system_prompt_chars": settings.MAX_SYSTEM_PROMPT_CHARS,
            "max_tokens": limits_for(request.user).max_tokens,
            "default_max_tokens": settings.DEFAULT_MAX_TOKENS,
        },
    }
