"""An external moderation endpoint that speaks the OpenAI or the Mistral schema.

Three schemas, by the endpoint they post to:
- `openai`: `POST {url}` (e.g. `https://api.openai.com/v1/moderations`) with
  `{"model", "input": text}`; the answer's `results[0].category_scores` has
  OpenAI's thirteen categories (below).
- `mistral`: `POST {url}` (`https://api.mistral.ai/v1/moderations`) with
  `{"model", "input": [text]}`; `results[0].category_scores` has Mistral's
  nine categories, which are ours.
- `mistral-chat`: `POST {url}` (`https://api.mistral.ai/v1/chat/moderations`)
  with `{"model", "input": [[messages]]}`: the conversation, so the verdict
  on a reply takes its prompt into account. Same answer as `mistral`.

The API key goes in `Authorization: Bearer KEY`. Each of our categories
scores the highest of the endpoint's categories mapped to it; those at or over
`threshold` are the verdict's. A timeout, an HTTP error or an answer that is
not the schema raises `ExternalModerationError`: the chain records it and
applies its failure policy (open or closed). Standard library only.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

from inference.moderation.base import ALLOW, API_CATEGORIES, CATEGORIES, Action, ModerationContext, Verdict

SCHEMAS = ("openai", "mistral", "mistral-chat")
DEFAULT_MODELS = {
    "openai": "omni-moderation-latest",
    "mistral": "mistral-moderation-latest",
    "mistral-chat": "mistral-moderation-latest",
}
# The most text sent in one check, and the most of an answer read.
MAX_INPUT_CHARS = 32_000
MAX_RESPONSE_BYTES = 1_000_000

# OpenAI's categories -> ours. Threatening hate or harassment counts as a threat too.
OPENAI_CATEGORIES: dict[str, tuple[str, ...]] = {
    "sexual": ("sexual",),
    "sexual/minors": ("sexual",),
    "hate": ("hate_and_discrimination",),
    "hate/threatening": ("hate_and_discrimination", "violence_and_threats"),
    "harassment": ("hate_and_discrimination",),
    "harassment/threatening": ("hate_and_discrimination", "violence_and_threats"),
    "violence": ("violence_and_threats",),
    "violence/graphic": ("violence_and_threats",),
    "self-harm": ("selfharm",),
    "self-harm/intent": ("selfharm",),
    "self-harm/instructions": ("selfharm",),
    "illicit": ("dangerous_and_criminal_content",),
    "illicit/violent": ("dangerous_and_criminal_content", "violence_and_threats"),
}
# Mistral's are ours, name for name.
MISTRAL_CATEGORIES: dict[str, tuple[str, ...]] = {name: (name,) for name in API_CATEGORIES}


class ExternalModerationError(RuntimeError):
    """The endpoint did not answer in time, answered an error, or not in the schema."""


def request_body(schema: str, model: str, text: str, messages: Sequence[Mapping[str, str]] = ()) -> dict:
    """The JSON body for `schema`; `mistral-chat` sends `messages` (then the reply `text`, if any)."""
    text = text[:MAX_INPUT_CHARS]
    if schema == "openai":
        return {"model": model, "input": text}
    if schema == "mistral":
        return {"model": model, "input": [text]}
    if schema == "mistral-chat":
        turns = [{"role": m["role"], "content": m["content"][:MAX_INPUT_CHARS]} for m in messages]
        if text:
            turns.append({"role": "assistant", "content": text})
        return {"model": model, "input": [turns]}
    raise ValueError(f"unknown schema {schema!r}; one of {', '.join(SCHEMAS)}")


def category_scores(schema: str, answer: object) -> dict[str, float]:
    """Our categories' scores from an answer; raise ExternalModerationError if it is not the schema."""
    try:
        scores = answer["results"][0]["category_scores"]  # type: ignore[index]
        if not isinstance(scores, dict):
            raise TypeError("category_scores is not an object")
        mapping = OPENAI_CATEGORIES if schema == "openai" else MISTRAL_CATEGORIES
        ours: dict[str, float] = {}
        for name, value in scores.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise TypeError(f"the score of {name!r} is not a number in [0, 1]")
            for category in mapping.get(name, ()):  # a category we do not know is ignored
                ours[category] = max(ours.get(category, 0.0), float(value))
    except (KeyError, IndexError, TypeError) as error:
        raise ExternalModerationError(f"the answer is not the {schema} moderation schema: {error}") from None
    return ours


class ExternalModerationHook:
    """Ask an external endpoint about the input and the whole reply (not each stream window)."""

    name = "external"

    def __init__(
        self,
        *,
        url: str,
        api_key: str = "",
        schema: str = "mistral",
        model: str = "",
        timeout_s: float = 2.0,
        threshold: float = 0.5,
        action: Action = Action.BLOCK,
        budget_ms: float | None = None,
    ) -> None:
        if schema not in SCHEMAS:
            raise ValueError(f"unknown schema {schema!r}; one of {', '.join(SCHEMAS)}")
        if not url.startswith(("http://", "https://")):
            raise ValueError("the URL must be http:// or https://")
        if timeout_s <= 0 or not 0.0 < threshold <= 1.0:
            raise ValueError("the timeout must be positive and the threshold in (0, 1]")
        self.url, self.api_key, self.schema = url, api_key, schema
        self.model = model or DEFAULT_MODELS[schema]
        self.timeout_s, self.threshold, self.action = timeout_s, threshold, action
        # The chain waits this long for the call (the default budget is too short for a network call).
        self.budget_ms = budget_ms if budget_ms is not None else timeout_s * 1000.0 + 250.0

    def check_input(self, ctx: ModerationContext) -> Verdict:
        text = ctx.messages[-1].get("content", "") if ctx.messages else ""
        if self.schema == "mistral-chat":
            return self._check("", ctx.messages)
        return self._check(text)

    def check_output(self, ctx: ModerationContext, text: str) -> Verdict:
        return self._check(text, ctx.messages)

    def _check(self, text: str, messages: Sequence[Mapping[str, str]] = ()) -> Verdict:
        if not text.strip() and not (self.schema == "mistral-chat" and messages):
            return ALLOW
        scores = category_scores(
            self.schema, self._post(request_body(self.schema, self.model, text, messages))
        )
        hits = {c: s for c, s in scores.items() if s >= self.threshold}
        if not hits:
            return ALLOW
        categories = tuple(c for c in CATEGORIES if c in hits)
        reason = f"{self.schema} endpoint: " + ", ".join(f"{c} {hits[c]:.2f}" for c in categories)
        return Verdict(self.action, categories, max(hits.values()), reason)

    def _post(self, body: dict) -> object:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - http(s) checked
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as error:
            raise ExternalModerationError(f"HTTP {error.code} from the moderation endpoint") from None
        except TimeoutError as error:
            raise ExternalModerationError("the moderation endpoint timed out") from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError | socket.timeout):
                raise ExternalModerationError("the moderation endpoint timed out") from None
            raise ExternalModerationError(f"the moderation endpoint is unreachable: {error.reason}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ExternalModerationError("the answer is over the size limit")
        try:
            return json.loads(raw)
        except ValueError:
            raise ExternalModerationError("the answer is not JSON") from None
