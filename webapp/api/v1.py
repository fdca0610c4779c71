"""The OpenAI-compatible endpoints under `/v1/` (docs/api.md): async views over the chat pipeline.

A request is stored as a conversation and queued like a page's `send`; the
view listens on the conversation's channel-layer group (joined before the
reply is queued, so no event is missed) and turns its `token` and `done`
events into OpenAI's answer, whole or as server-sent events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from webapp.accounts.access import Limits, limits_for
from webapp.api import schema, services
from webapp.api.models import ApiKey
from webapp.api.schema import ApiError, ApiRequest
from webapp.chat import live
from webapp.chat.services import ChatInputError
from webapp.workers import live_workers, model_summary

logger = logging.getLogger(__name__)

# After a stop is asked for, how long to wait for the worker's `done`.
STOP_GRACE_S = 10.0
NO_WORKER_RETRY_S = 10


def error_response(error: ApiError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status)
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        response["WWW-Authenticate"] = "Bearer"
    return response


async def _authenticate(request: HttpRequest) -> tuple[ApiKey, Limits]:
    """The request's key and its owner's limits; 401 without a valid key, 403 where the API is not allowed."""
    api_key = await database_sync_to_async(services.api_key_authenticate)(
        authorization=request.headers.get("Authorization", "")
    )
    if api_key is None:
        raise ApiError(
            401,
            "Missing, invalid or revoked API key: send `Authorization: Bearer <key>`.",
            code="invalid_api_key",
        )
    limits = await database_sync_to_async(limits_for)(api_key.owner)
    if not limits.api_allowed:
        raise ApiError(
            403,
            "Your account's groups do not allow the API; ask an administrator.",
            code="api_not_allowed",
            error_type="permission_error",
        )
    return api_key, limits


def served_model() -> str:
    """The model id the API answers to; 503 when no worker is up to serve it."""
    try:
        summary = model_summary(live_workers())
    except Exception:  # Redis down: no worker can be reached either
        summary = {"state": "offline"}
    if summary["state"] in ("offline", "failed"):
        raise ApiError(
            503,
            "No inference worker is up; try again later.",
            code="no_worker",
            error_type="server_error",
            retry_after=NO_WORKER_RETRY_S,
        )
    return settings.API_MODEL_NAME or summary["model"]


@csrf_exempt
async def models(request: HttpRequest) -> HttpResponse:
    try:
        if request.method != "GET":
            raise ApiError(405, "Use GET.", code="method_not_allowed")
        await _authenticate(request)
        name = await sync_to_async(served_model)()
    except ApiError as error:
        return error_response(error)
    model = {"id": name, "object": "model", "created": 0, "owned_by": "mistral-chat"}
    return JsonResponse({"object": "list", "data": [model]})


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await _answer(request, schema.parse_chat)


@csrf_exempt
async def completions(request: HttpRequest) -> HttpResponse:
    return await _answer(request, schema.parse_completion)


async def _answer(request: HttpRequest, parse: Callable[[dict[str, Any]], ApiRequest]) -> HttpResponse:
    reply: ReplyListener | None = None
    try:
        if request.method != "POST":
            raise ApiError(405, "Use POST.", code="method_not_allowed")
        api_key, limits = await _authenticate(request)
        try:
            body = request.body
        except RequestDataTooBig:
            raise ApiError(413, "The body is too large.", code="request_too_large") from None
        api_request = await sync_to_async(parse)(schema.parse_body(body), max_tokens_limit=limits.max_tokens)
        model = await sync_to_async(served_model)()
        if api_request.model != model:
            raise ApiError(
                404,
                f"The model {api_request.model[:100]!r} does not exist; see /v1/models.",
                param="model",
                code="model_not_found",
            )
        reply = ReplyListener(api_request, model)
        await reply.open(api_key)
        texts = reply.texts()
        if api_request.stream:
            # Wait for the first text before the headers: a refusal before it is still a status code.
            first = await anext(texts, None)
            reply.check_refused()
            response = StreamingHttpResponse(reply.sse(first, texts), content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            reply = None  # the stream closes it
            return response
        text = "".join([piece async for piece in texts])
        reply.check_refused()
        return JsonResponse(reply.completion(text))
    except ApiError as error:
        return error_response(error)
    finally:
        # Also on a client gone before the answer: Django cancels this view.
        if reply is not None:
            await reply.close()


class ReplyListener:
    """One request's reply, followed on its conversation's group, from queueing to `done`."""

    def __init__(self, request: ApiRequest, model: str) -> None:
        self.request = request
        self.model = model
        self.created = int(time.time())
        self.conversation_id = uuid.uuid4()
        self.done: dict[str, Any] | None = None
        self.sent_any = False
        self.stop_asked = False
        self.reply_id = ""
        self.layer = get_channel_layer()
        self.channel = ""
        self._receiving: asyncio.Future[dict[str, Any]] | None = None

    @property
    def ident(self) -> str:
        return ("cmpl-" if self.request.raw else "chatcmpl-") + self.reply_id.replace("-", "")

    async def open(self, api_key: ApiKey) -> None:
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(live.group_name(self.conversation_id), self.channel)
        try:
            reply = await database_sync_to_async(services.api_reply_start)(
                api_key=api_key, request=self.request, conversation_id=self.conversation_id
            )
        except ChatInputError as error:
            await self.layer.group_discard(live.group_name(self.conversation_id), self.channel)
            await self._release()
            self.channel = ""
            raise schema.from_chat_error(error) from None
        self.reply_id = str(reply.id)

    async def texts(self) -> AsyncIterator[str]:
        """The reply's text as it streams (the worker applies the stop strings); ends at `done`."""
        deadline = time.monotonic() + settings.API_REPLY_TIMEOUT_S
        while self.done is None:
            event = await self._next_event(deadline - time.monotonic())
            if event is None and self.stop_asked:  # no worker answers any more
                self.done = {"status": "failed", "error": "The reply did not end in time.", "stats": {}}
            elif event is None:  # out of time: stop it, and answer with what came
                self._ask_stop()
                deadline = time.monotonic() + STOP_GRACE_S
                continue
            elif event["type"] == "done":
                self.done = event
            elif event["type"] == "token" and event["text"]:
                self.sent_any = True
                yield event["text"]

    async def _next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event of this reply, or None after `timeout` seconds."""
        loop_until = time.monotonic() + max(timeout, 0.0)
        while (remaining := loop_until - time.monotonic()) > 0:
            # One receive at a time, never cancelled on a timeout: the pub/sub
            # layer drops a channel whose receive is cancelled (see _release).
            if self._receiving is None:
                self._receiving = asyncio.ensure_future(self.layer.receive(self.channel))
            done, _ = await asyncio.wait({self._receiving}, timeout=remaining)
            if not done:
                return None
            message, self._receiving = self._receiving.result(), None
            event = message.get("event") or {}
            if event.get("message_id") == self.reply_id:
                return event
        return None

    async def _release(self) -> None:
        """Give the channel back: the pub/sub layer unsubscribes a channel whose receive is cancelled.

        It has no other way to drop one (channels_redis's RedisPubSubChannelLayer.receive).
        """
        while True:
            receiving = self._receiving or asyncio.ensure_future(self.layer.receive(self.channel))
            self._receiving = None
            await asyncio.sleep(0)  # let it reach the queue: it ends now only if a message waited
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving
                return

    def _ask_stop(self) -> None:
        if not self.stop_asked:
            self.stop_asked = True
            live.request_stop(self.reply_id)

    def check_refused(self) -> None:
        """Raise the error answer for a reply refused before any text: blocked input, or a failure."""
        if self.done is None or self.sent_any:
            return
        stats = self.done.get("stats") or {}
        if self.done["status"] == "blocked" and not stats.get("completion_tokens"):
            raise ApiError(
                400, "The input was blocked by moderation.", param="messages", code="content_filter"
            )
        if self.done["status"] == "failed":
            raise ApiError(
                500,
                self.done.get("error") or "The reply failed.",
                error_type="server_error",
                code="reply_failed",
            )

    def finish_reason(self) -> str:
        assert self.done is not None
        if self.done["status"] == "blocked":
            return "content_filter"
        completion = (self.done.get("stats") or {}).get("completion_tokens") or 0
        if self.done["status"] == "complete" and completion >= self.request.params.max_tokens:
            return "length"
        return "stop"

    def usage(self) -> dict[str, int]:
        stats = (self.done or {}).get("stats") or {}
        return schema.usage(stats.get("prompt_tokens") or 0, stats.get("completion_tokens") or 0)

    def _meta(self) -> dict[str, Any]:
        return {"request": self.request, "ident": self.ident, "created": self.created, "model": self.model}

    def completion(self, text: str) -> dict[str, Any]:
        return schema.completion_body(
            **self._meta(), text=text, finish=self.finish_reason(), used=self.usage()
        )

    async def sse(self, first: str | None, texts: AsyncIterator[str]) -> AsyncIterator[bytes]:
        """The server-sent events of a streamed answer, ending `data: [DONE]`."""
        try:
            if not self.request.raw:
                yield _data(schema.chunk_body(**self._meta(), text="", first=True))
            if first:
                yield _data(schema.chunk_body(**self._meta(), text=first))
            async for text in texts:
                yield _data(schema.chunk_body(**self._meta(), text=text))
            if self.done is not None and self.done["status"] == "failed":
                yield _data(
                    ApiError(
                        500, self.done.get("error") or "The reply failed.", error_type="server_error"
                    ).body()
                )
            else:
                yield _data(schema.chunk_body(**self._meta(), text=None, finish=self.finish_reason()))
                if self.request.include_usage:
                    yield _data(schema.usage_chunk(**self._meta(), used=self.usage()))
            yield b"data: [DONE]\n\n"
        finally:
            await self.close()

    async def close(self) -> None:
        """Leave the group; a reply still running (the client went away) is stopped and awaited."""
        if not self.channel:
            return
        try:
            if self.reply_id and self.done is None:
                self._ask_stop()
                deadline = time.monotonic() + STOP_GRACE_S
                while self.done is None and (event := await self._next_event(deadline - time.monotonic())):
                    if event["type"] == "done":
                        self.done = event
            await self.layer.group_discard(live.group_name(self.conversation_id), self.channel)
            await self._release()
            await database_sync_to_async(services.api_conversation_end)(conversation_id=self.conversation_id)
        except Exception:
            logger.exception("closing an API reply failed")
        finally:
            self.channel = ""


def _data(body: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(body)}\n\n".encode()
