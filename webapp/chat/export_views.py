"""Export and import pages: one conversation as a file, all of mine as a streamed zip, and import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from webapp.accounts.access import limits_for
from webapp.chat.exports import (
    FORMATS,
    ZIP_FORMATS,
    ascii_filename_stem,
    attachment_disposition,
    export_zip,
    messages_for_export,
    render_conversation,
)
from webapp.chat.imports import ImportRejected, conversation_import
from webapp.chat.models import Message
from webapp.chat.selectors import (
    ConversationForbidden,
    ConversationNotFound,
    access_conversation,
    conversations_for_user,
)

logger = logging.getLogger(__name__)

# Conversations listed with their own download links on the export page; the zip has them all.
LISTED = 50
# The print page holds only escaped text and its own style: forbid everything else.
HTML_EXPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


@login_required
@require_GET
def conversation_export(request: HttpRequest, conversation_id: str, export_format: str) -> HttpResponse:
    if export_format not in FORMATS:
        raise Http404("No such export format.")
    try:
        conversation = access_conversation(request.user, conversation_id, allow_staff=True)
    except (ConversationNotFound, ConversationForbidden):
        raise Http404("No such conversation.") from None
    if conversation.is_temporary:
        raise Http404("A temporary chat is never exported.")
    if conversation.owner_id == request.user.pk and not limits_for(request.user).exports_allowed:
        # A moderator's export of someone else's conversation is review, not the person's own export.
        return exports_refused(request)
    body = render_conversation(
        conversation, messages_for_export(conversation), export_format, all_paths=_all_paths(request)
    )
    response = HttpResponse(body, content_type=FORMATS[export_format].content_type)
    disposition = attachment_disposition(conversation.title, FORMATS[export_format].extension)
    if export_format == "html":
        # Opened in the browser, ready to print; "save as" still gets the name.
        disposition = disposition.replace("attachment", "inline", 1)
        response["Content-Security-Policy"] = HTML_EXPORT_CSP
    response["Content-Disposition"] = disposition
    return response


@login_required
@require_GET
def export_all(request: HttpRequest) -> HttpResponse:
    """Without `format`: the page; with it: the zip of all my conversations in that format."""
    if not limits_for(request.user).exports_allowed:
        return exports_refused(request)
    export_format = request.GET.get("format")
    if export_format is None:
        conversations = conversations_for_user(request.user)
        return render(
            request,
            "chat/export_all.html",
            {
                "conversations": conversations[:LISTED],
                "total": conversations.count(),
                "formats": ZIP_FORMATS,
                "single_formats": list(FORMATS),
            },
        )
    if export_format not in ZIP_FORMATS:
        raise Http404("No such export format.")
    exported_at = timezone.now()
    stem = ascii_filename_stem(f"mistral-chat-{request.user.get_username()}")
    return zip_download(
        request,
        export_zip(
            conversations_for_user(request.user),
            export_format,
            exported_at=exported_at,
            all_paths=_all_paths(request),
        ),
        filename=f"{stem}-{exported_at:%Y-%m-%d}-{export_format}.zip",
    )


@login_required
@require_GET
def export_started(request: HttpRequest) -> HttpResponse:
    """The page that starts the zip's download and says how much it will hold."""
    if not limits_for(request.user).exports_allowed:
        return exports_refused(request)
    export_format = request.GET.get("format")
    if export_format not in ZIP_FORMATS:
        raise Http404("No such export format.")
    conversations = conversations_for_user(request.user)
    context = {
        "format": export_format,
        # Not "messages": that name is the flash messages' in every template.
        "conversation_count": conversations.count(),
        "message_count": Message.objects.filter(conversation__in=conversations).count(),
        "all_paths": _all_paths(request),
    }
    return render(request, "chat/export_started.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def import_page(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {}
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            context["error"], status = "Choose a file to import.", 400
        else:
            try:
                context["imported"] = conversation_import(owner=request.user, file=upload, size=upload.size)
            except ImportRejected as rejected:
                context["error"], status = f"Nothing was imported. {rejected.message}", 400
    return render(request, "chat/import.html", context, status=status)


def exports_refused(request: HttpRequest) -> HttpResponse:
    """403 with the reason, for people whose groups do not allow exports."""
    context = {
        "heading": "Exports are off",
        "code": "exports_not_allowed",
        "reason": "Your account's groups do not allow exports; ask an administrator.",
    }
    return render(request, "accounts/refused.html", context, status=403)


def _all_paths(request: HttpRequest) -> bool:
    """`?paths=all`: every path through each conversation's tree, not only the path shown."""
    return request.GET.get("paths") == "all"


def zip_download(request: HttpRequest, pieces: Iterator[bytes], *, filename: str) -> StreamingHttpResponse:
    """Stream a zip built piece by piece; under ASGI, each piece is built in the request's sync thread."""
    return stream_download(request, pieces, filename=filename, content_type="application/zip")


def stream_download(
    request: HttpRequest, pieces: Iterator[bytes], *, filename: str, content_type: str
) -> StreamingHttpResponse:
    """Stream a file built piece by piece (a zip, JSON Lines) as an attachment."""
    # Django's ASGI handler would first list() a plain iterator, holding the
    # whole file in memory; an async one it forwards piece by piece.
    content = _pulled_in_sync_thread(pieces) if isinstance(request, ASGIRequest) else pieces
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


async def _pulled_in_sync_thread(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    # thread_sensitive: every piece comes from the same thread, so the
    # queryset's cursor and database connection stay where they were opened.
    pull = sync_to_async(next, thread_sensitive=True)
    done = object()
    try:
        while (piece := await pull(pieces, done)) is not done:
            yield piece
    except Exception:
        # Headers are sent: a raise here would leave a Daphne client waiting
        # forever (it answers with a second status line, which fails). End the body.
        logger.exception("download stopped early")
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=True)()
