"""OpenAI's request and response shapes: parse a request into an ApiRequest, build the answers.

A field we do not honour is refused when it would change the output (docs/api.md
lists which); a field that changes nothing at its neutral value passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from inference.chat_template import ContextOverflow, encode_chat, fit_raw
from inference.params import SamplingParams
from webapp.chat import services
from webapp.chat.services import ChatInputError

MAX_MESSAGES = 500
MAX_STOPS = 4
MAX_STOP_CHARS = 200
# Fields accepted at these values only: anything else would change the output.
NEUTRAL = {
    "n": 1,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "logprobs": False,
    "echo": False,
    "best_of": 1,
    "parallel_tool_calls": True,
}
# Fields that never change the output.
IGNORED = ("user", "metadata", "store")
# What a message may hold; `name` changes nothing for this model and passes.
MESSAGE_FIELDS = {"role", "content", "name"}
COMMON = ("model", "temperature", "top_p", "max_tokens", "seed", "stop", "stream", "stream_options")
CHAT_FIELDS = (*COMMON, "messages", "max_completion_tokens")
COMPLETION_FIELDS = (*COMMON, "prompt")


class ApiError(Exception):
    """An answer in OpenAI's error format: `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str = "invalid_request_error",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.error_type, self.retry_after = error_type, retry_after

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid(message: str, *, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


# Codes of ChatInputError that mean "later", not "wrong".
LIMIT_CODES = {"rate_limited": "rate_limit_exceeded", "quota_exceeded": "insufficient_quota", "busy": "busy"}


def from_chat_error(error: ChatInputError) -> ApiError:
    """The API's answer to a refusal of the chat services."""
    if error.code in LIMIT_CODES:
        return ApiError(
            429,
            error.message,
            code=LIMIT_CODES[error.code],
            error_type="rate_limit_error",
            retry_after=error.retry_after,
        )
    if error.code == "context_overflow":
        return invalid(error.message, param="messages", code="context_length_exceeded")
    return invalid(error.message, code=error.code)


@dataclass(frozen=True)
class ApiRequest:
    """A checked request: the turns to store, the sampling parameters and how to answer."""

    model: str
    turns: list[dict[str, str]]  # alternating user/assistant, ending with user
    system_prompt: str
    params: SamplingParams
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    raw: bool = False


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise invalid("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise invalid("The body must be a JSON object.", code="invalid_json")
    return payload


def parse_chat(payload: dict[str, Any], *, max_tokens_limit: int | None = None) -> ApiRequest:
    """Check a `/v1/chat/completions` body; raise ApiError naming the offending `param`."""
    _check_fields(payload, CHAT_FIELDS)
    if payload.get("max_completion_tokens") is not None:
        payload = {**payload, "max_tokens": payload["max_completion_tokens"]}
    system_prompt, turns = _parse_messages(payload.get("messages"))
    request = _parse_common(
        payload, turns=turns, system_prompt=system_prompt, raw=False, max_tokens_limit=max_tokens_limit
    )
    try:
        needed = len(encode_chat(turns, system_prompt or None)) + request.params.max_tokens
    except ValueError as error:
        raise invalid(str(error), param="messages") from None
    if needed > settings.CONTEXT_LIMIT:
        raise invalid(
            f"The messages and max_tokens need {needed} tokens; the context holds {settings.CONTEXT_LIMIT}.",
            param="messages",
            code="context_length_exceeded",
        )
    return request


def parse_completion(payload: dict[str, Any], *, max_tokens_limit: int | None = None) -> ApiRequest:
    """Check a `/v1/completions` body: one `prompt` string, formatted by the caller."""
    _check_fields(payload, COMPLETION_FIELDS)
    prompt = payload.get("prompt")
    if not isinstance(prompt, str):
        raise invalid("prompt must be one string.", param="prompt")
    prompt = _checked(services.check_content, prompt, "prompt")
    request = _parse_common(
        payload,
        turns=[{"role": "user", "content": prompt}],
        system_prompt="",
        raw=True,
        max_tokens_limit=max_tokens_limit,
    )
    try:
        fit_raw(prompt, max_tokens=request.params.max_tokens, context_limit=settings.CONTEXT_LIMIT)
    except ContextOverflow as overflow:
        raise invalid(str(overflow), param="prompt", code="context_length_exceeded") from None
    return request


def _check_fields(payload: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for name, value in payload.items():
        if name in allowed or name in IGNORED or value is None:
            continue
        if name in NEUTRAL:
            if value != NEUTRAL[name] or type(value) is not type(NEUTRAL[name]):
                raise invalid(
                    f"{name} is only supported at {json.dumps(NEUTRAL[name])}.",
                    param=name,
                    code="unsupported_value",
                )
            continue
        raise invalid(f"Unsupported parameter {name[:40]!r}.", param=name[:40], code="unsupported_parameter")
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        raise invalid("model is required: a model id from /v1/models.", param="model")


def _parse_common(
    payload: dict[str, Any],
    *,
    turns: list[dict[str, str]],
    system_prompt: str,
    raw: bool,
    max_tokens_limit: int | None,
) -> ApiRequest:
    sampling = {
        name: payload[name]
        for name in ("temperature", "top_p", "max_tokens", "seed")
        if payload.get(name) is not None
    }
    try:
        params = services.check_params(sampling, max_tokens_limit=max_tokens_limit)
    except ChatInputError as error:
        name = next((n for n in sampling if n in error.message), None)
        raise invalid(error.message, param=name) from None
    stream = payload.get("stream", False) or False
    if not isinstance(stream, bool):
        raise invalid("stream must be true or false.", param="stream")
    options = payload.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise invalid("stream_options is only allowed with stream: true.", param="stream_options")
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise invalid("stream_options supports only include_usage.", param="stream_options")
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise invalid("include_usage must be true or false.", param="stream_options.include_usage")
    return ApiRequest(
        model=payload["model"],
        turns=turns,
        system_prompt=system_prompt,
        params=params,
        stop=_parse_stop(payload.get("stop")),
        stream=stream,
        include_usage=include_usage,
        raw=raw,
    )


def _parse_stop(stop: object) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else stop
    if stops is None:
        return ()
    if not isinstance(stops, list) or len(stops) > MAX_STOPS:
        raise invalid(f"stop must be a string or a list of at most {MAX_STOPS} strings.", param="stop")
    for item in stops:
        if not isinstance(item, str) or not item or len(item) > MAX_STOP_CHARS:
            raise invalid(f"Each stop sequence must be 1 to {MAX_STOP_CHARS} characters.", param="stop")
    return tuple(stops)


def _parse_messages(messages: object) -> tuple[str, list[dict[str, str]]]:
    """The system prompt and the alternating turns; consecutive turns of one role are joined."""
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty list.", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise invalid(f"At most {MAX_MESSAGES} messages.", param="messages")
    system: list[str] = []
    turns: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid(f"{where} must be an object.", param=where)
        unknown = sorted(set(message) - MESSAGE_FIELDS)
        if unknown:
            raise invalid(
                f"{where}.{unknown[0][:40]} is not supported.",
                param=f"{where}.{unknown[0][:40]}",
                code="unsupported_parameter",
            )
        role, content = message.get("role"), _text(message.get("content"), where)
        if role == "system":
            if turns:
                raise invalid("System messages must come before the others.", param=where)
            system.append(content)
        elif role in ("user", "assistant"):
            if role == "user":
                content = _checked(services.check_content, content, f"{where}.content")
            elif not content or len(content) > settings.IMPORT_MAX_REPLY_CHARS or "\x00" in content:
                raise invalid(
                    f"{where}.content must be 1 to {settings.IMPORT_MAX_REPLY_CHARS} characters.", param=where
                )
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"] += "\n\n" + content
            else:
                turns.append({"role": role, "content": content})
        else:
            raise invalid(f"{where}.role must be system, user or assistant.", param=f"{where}.role")
    if not turns or turns[0]["role"] != "user" or turns[-1]["role"] != "user":
        raise invalid(
            "After the system messages, messages must start and end with a user message.", param="messages"
        )
    system_prompt = _checked(services.check_system_prompt, "\n\n".join(system), "messages")
    return system_prompt, turns


def _text(content: object, where: str) -> str:
    """A message's text: a string, or a list of `{"type": "text", "text": ...}` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        for part in content
    ):
        return "".join(part["text"] for part in content)
    raise invalid(f"{where}.content must be a string or a list of text parts.", param=f"{where}.content")


def _checked(check: Any, value: object, param: str) -> Any:
    try:
        return check(value)
    except ChatInputError as error:
        raise invalid(error.message, param=param, code=error.code) from None


# --- answers ---------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    *, request: ApiRequest, ident: str, created: int, model: str, text: str, finish: str, used: dict
) -> dict:
    """The whole answer of a request without `stream`."""
    if request.raw:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        kind = "text_completion"
    else:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": finish,
        }
        kind = "chat.completion"
    return {
        "id": ident,
        "object": kind,
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": used,
    }


def chunk_body(
    *,
    request: ApiRequest,
    ident: str,
    created: int,
    model: str,
    text: str | None,
    finish: str | None = None,
    first: bool = False,
) -> dict:
    """One server-sent event of a streamed answer; `text` None for the last one (finish only)."""
    if request.raw:
        choice: dict[str, Any] = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        kind = "text_completion"
    else:
        delta: dict[str, str] = {"role": "assistant"} if first else {}
        if text is not None:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        kind = "chat.completion.chunk"
    body = {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice]}
    if request.include_usage:
        body["usage"] = None
    return body


def usage_chunk(*, request: ApiRequest, ident: str, created: int, model: str, used: dict) -> dict:
    kind = "text_completion" if request.raw else "chat.completion.chunk"
    return {"id": ident, "object": kind, "created": created, "model": model, "choices": [], "usage": used}
