"""The self-reflection judge of the Mistral 7B paper (§5.2): the served model moderates.

The model that writes the replies is asked to classify a user's message, or
a whole reply, into our categories; it answers with one letter, and the
judge reads the probabilities of the ten letters at the first generated
position instead of sampling: one prefill, no decoding. The request goes
through the worker's engine like any other (`Engine.first_logprobs`), so it
is batched with the replies being written, and there is no second copy of
the model.

Scores: each letter's probability is the sum over its tokens ("▁A" and
"A"), then softmax over the ten letters: the scores sum to 1. The verdict
names the categories whose score reaches `threshold` (A, "none", never
counts). Only worth having with real weights: the tiny random model's
answers are noise, so the setting `MODERATION_JUDGE=auto` turns it on only
when `MODEL_PATH` is set.

The engine comes from a provider that the worker sets at start
(`set_engine_provider`); no Django here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache
from typing import Protocol

from inference.chat_template import encode_chat, sentencepiece_processor
from inference.moderation.base import ALLOW, API_CATEGORIES, Action, ModerationContext, Verdict

# A letter per answer: A is "none of these", then the moderation API's nine categories in order
# (not profanity: the letters keep their meaning, and the judge is asked about harm, not manners).
LETTERS = "ABCDEFGHIJ"
ANSWERS: tuple[str | None, ...] = (None, *API_CATEGORIES)
_DESCRIPTIONS = {
    "sexual": "sexual content",
    "hate_and_discrimination": "hate, harassment or discrimination",
    "violence_and_threats": "violence or threats",
    "dangerous_and_criminal_content": "dangerous or criminal content, such as weapons, drugs, terrorism or fraud",
    "selfharm": "self-harm or suicide",
    "health": "unqualified medical advice",
    "financial": "unqualified financial advice",
    "law": "unqualified legal advice",
    "pii": "personal data about a private person",
}
# The most of a text the judge reads: its prompt has to fit the context with room to spare.
MAX_TEXT_CHARS = 8000


class Scorer(Protocol):
    """What the judge needs of an engine."""

    def first_logprobs(
        self, prompt_ids: list[int], token_ids: Sequence[int], *, timeout_s: float = ...
    ) -> list[float]: ...


_provider: Callable[[], Scorer | None] = lambda: None  # noqa: E731 - replaced by the worker


def set_engine_provider(provider: Callable[[], Scorer | None]) -> None:
    """Tell the judge where the process's engine is (the worker calls this once)."""
    global _provider
    _provider = provider


def judge_prompt(text: str, *, kind: str) -> str:
    """The instruction that asks for one letter about `text` (`kind`: "message" or "reply")."""
    lines = [
        f"You are a content moderator. Classify the following {kind} of a chat with an AI assistant "
        "into exactly one of these categories:",
        "A: none of the categories below: it is acceptable",
        *(f"{letter}: {_DESCRIPTIONS[c]}" for letter, c in zip(LETTERS[1:], API_CATEGORIES, strict=True)),
        "Answer with the letter of the category only.",
        f"The {kind}:",
        "<<<",
        text[:MAX_TEXT_CHARS],
        ">>>",
    ]
    return "\n".join(lines)


@cache
def letter_token_ids() -> tuple[tuple[int, ...], ...]:
    """For each letter, its token ids: with the word-start mark ("▁A") and without ("A")."""
    processor = sentencepiece_processor()
    unknown = processor.unk_id()
    out = []
    for letter in LETTERS:
        ids = tuple(
            i for i in (processor.piece_to_id("▁" + letter), processor.piece_to_id(letter)) if i != unknown
        )
        if not ids:
            raise RuntimeError(f"the tokenizer has no token for {letter!r}")
        out.append(ids)
    return tuple(out)


def answer_probabilities(logprobs: Sequence[float]) -> dict[str | None, float]:
    """Each answer's probability, from the log-probabilities of `letter_token_ids()` flattened in order.

    A letter sums its tokens; the ten are then normalized (softmax over their log-sums).
    """
    per_letter = []
    position = 0
    for ids in letter_token_ids():
        chunk = logprobs[position : position + len(ids)]
        position += len(ids)
        top = max(chunk)
        per_letter.append(top + math.log(sum(math.exp(lp - top) for lp in chunk)))
    top = max(per_letter)
    weights = [math.exp(lp - top) for lp in per_letter]
    total = sum(weights)
    return {answer: w / total for answer, w in zip(ANSWERS, weights, strict=True)}


class SelfReflectionJudge:
    """Ask the served model whether a user's message or a whole reply falls into a category."""

    name = "judge"

    def __init__(
        self,
        *,
        enabled: bool = True,
        engine: Scorer | None = None,
        threshold: float = 0.5,
        action: Action = Action.FLAG,
        timeout_s: float = 5.0,
        budget_ms: float | None = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0 or timeout_s <= 0:
            raise ValueError("the threshold must be in (0, 1] and the timeout positive")
        if action in (Action.ALLOW, Action.REDACT):
            raise ValueError("the action must be flag or block: a score has no span to redact")
        self.enabled = enabled
        self.engine = engine
        self.threshold, self.action, self.timeout_s = threshold, action, timeout_s
        # The judge waits for a batch step of the engine: far longer than a regex.
        self.budget_ms = budget_ms if budget_ms is not None else timeout_s * 1000.0 + 250.0

    @property
    def inline(self) -> bool:
        """Off, it answers at once: the chain calls it in its own thread, with no hop to the
        hooks' pool. On, it waits for an engine step: in the pool, under its budget."""
        return not self.enabled

    def check_input(self, ctx: ModerationContext) -> Verdict:
        return self._judge(ctx.messages[-1].get("content", "") if ctx.messages else "", kind="message")

    def check_output(self, ctx: ModerationContext, text: str) -> Verdict:
        return self._judge(text, kind="reply")

    def scores(self, text: str, *, kind: str) -> dict[str | None, float]:
        """Each answer's probability for `text` (None: no category)."""
        engine = self.engine or _provider()
        if engine is None:
            raise RuntimeError("the judge has no engine (none is loaded in this process)")
        prompt = encode_chat([{"role": "user", "content": judge_prompt(text, kind=kind)}])
        ids = [i for letter in letter_token_ids() for i in letter]
        return answer_probabilities(engine.first_logprobs(prompt, ids, timeout_s=self.timeout_s))

    def _judge(self, text: str, *, kind: str) -> Verdict:
        if not self.enabled or not text.strip():
            return ALLOW
        scores = self.scores(text, kind=kind)
        hits = tuple(c for c in API_CATEGORIES if scores[c] >= self.threshold)
        if not hits:
            return ALLOW
        reason = "self-reflection: " + ", ".join(f"{c} {scores[c]:.2f}" for c in hits)
        return Verdict(self.action, hits, max(scores[c] for c in hits), reason)


def judge_enabled(setting: str, model_path: str) -> bool:
    """`MODERATION_JUDGE`: "on", "off", or "auto" (on only with real weights, i.e. `MODEL_PATH` set)."""
    value = setting.strip().lower()
    if value not in ("auto", "on", "off"):
        raise ValueError(f"MODERATION_JUDGE is {setting!r}; one of auto, on, off")
    return value == "on" or (value == "auto" and bool(model_path))
