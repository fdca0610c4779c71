"""`/c/<conversation>/m/<message>/feedback/`: GET the person's feedback on a reply, POST to change it."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.http import require_http_methods

from webapp.chat.feedback import (
    FeedbackNotFound,
    check_feedback,
    feedback_fields,
    feedback_message,
    feedback_set,
)
from webapp.chat.models import Feedback
from webapp.chat.services import ChatInputError

MAX_BODY_BYTES = 16 * 1024


@login_required
@require_http_methods(["GET", "POST"])
def reply_feedback(request: HttpRequest, conversation_id: str, message_id: str) -> JsonResponse:
    """JSON both ways; POST a body `{"rating": "up"|"down"|null, "reasons": [...], "comment": "..."}`."""
    try:
        message = feedback_message(request.user, conversation_id, message_id)
    except FeedbackNotFound:
        raise Http404("No such reply.") from None
    if request.method == "GET":
        return JsonResponse(
            feedback_fields(Feedback.objects.filter(message=message, user=request.user).first())
        )
    try:
        body = _json_body(request)
        rating, reasons, comment = check_feedback(
            rating=body.get("rating"), reasons=body.get("reasons"), comment=body.get("comment")
        )
        feedback = feedback_set(
            user=request.user, message=message, rating=rating, reasons=reasons, comment=comment
        )
    except ChatInputError as error:
        return JsonResponse({"code": error.code, "message": error.message}, status=400)
    return JsonResponse(feedback_fields(feedback))


def _json_body(request: HttpRequest) -> dict[str, object]:
    if len(request.body) > MAX_BODY_BYTES:
        raise ChatInputError("invalid_feedback", "The request is too large.")
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError):
        raise ChatInputError("invalid_feedback", "Send a JSON object.") from None
    if not isinstance(body, dict):
        raise ChatInputError("invalid_feedback", "Send a JSON object.")
    return body
