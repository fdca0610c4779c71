"""A user reports one of the assistant's replies in their conversation: GET the form, POST it."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from webapp.chat.models import Message
from webapp.chat.selectors import ConversationForbidden, ConversationNotFound, access_conversation, visible
from webapp.moderation.models import Report
from webapp.moderation.services import MAX_DETAIL_CHARS, ModerationInputError, report_create


@login_required
@require_http_methods(["GET", "POST"])
def report_reply(request: HttpRequest, conversation_id: str, message_id: str) -> HttpResponse:
    """JSON for the page's script (Accept: application/json), a page and a redirect without it."""
    message = _reported_message(request, conversation_id, message_id)
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    error: ModerationInputError | None = None
    if message.role != Message.Role.ASSISTANT:
        error = ModerationInputError("not_a_reply", "Only the assistant's replies can be reported.")
    elif request.method == "POST":
        try:
            report = report_create(
                reporter=request.user,
                message=message,
                reason=request.POST.get("reason"),
                detail=request.POST.get("detail", ""),
            )
        except ModerationInputError as refused:
            error = refused
        else:
            if wants_json:
                return JsonResponse({"id": report.pk, "status": report.status})
            flash.success(request, "Thank you: the moderators will look at this reply.")
            return redirect("chat:conversation", conversation_id=message.conversation_id)
    if error is not None and wants_json:
        return JsonResponse({"code": error.code, "message": error.message}, status=400)
    context = {
        "message": message,
        "reasons": Report.Reason.choices,
        "max_detail_chars": MAX_DETAIL_CHARS,
        "error": error,
        "chosen": request.POST.get("reason", ""),
        "detail": request.POST.get("detail", ""),
    }
    return render(request, "chat/report.html", context, status=400 if error else 200)


def _reported_message(request: HttpRequest, conversation_id: str, message_id: str) -> Message:
    try:
        conversation = access_conversation(request.user, conversation_id)
        message = visible(conversation.messages.filter(id=UUID(message_id))).first()
    except (ConversationNotFound, ConversationForbidden, ValueError):
        # Somebody else's conversation looks exactly like a missing one.
        message = None
    if message is None:
        raise Http404("No such message.")
    return message
