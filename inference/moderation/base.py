"""The moderation protocol: categories, actions, verdicts, and applying redactions.

A hook is any object with a `name` and any of `check_input(ctx)`,
`check_stream(ctx, text)` and `check_output(ctx, text)`, each returning a
`Verdict`. The chain (see `chain`) runs them and fills in who, when and how long.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

# The nine categories of the Mistral moderation API (the judge's letters, the external endpoint's answer).
API_CATEGORIES: tuple[str, ...] = (
    "sexual",
    "hate_and_discrimination",
    "violence_and_threats",
    "dangerous_and_criminal_content",
    "selfharm",
    "health",
    "financial",
    "law",
    "pii",
)
# Insults and swearing aimed at no group: none of the nine, so filing them under
# hate_and_discrimination would put a rude word in with a slur (the offensive-language classifier).
PROFANITY = "profanity"
# Every category an event, a rule or a policy can name: one set for the whole app.
CATEGORIES: tuple[str, ...] = (*API_CATEGORIES, PROFANITY)


class Action(StrEnum):
    """What to do with the checked text, in increasing severity."""

    ALLOW = "allow"
    FLAG = "flag"
    REDACT = "redact"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {action: rank for rank, action in enumerate(Action)}


def most_severe(actions: Iterable[Action]) -> Action:
    """The most severe of `actions`; ALLOW when there are none."""
    return max(actions, key=_SEVERITY.__getitem__, default=Action.ALLOW)


class Stage(StrEnum):
    INPUT = "input"
    STREAM = "stream"
    OUTPUT = "output"


@dataclass(frozen=True)
class Span:
    """A redaction: `text[start:end]` becomes `replacement`."""

    start: int
    end: int
    replacement: str


@dataclass(frozen=True)
class Verdict:
    action: Action
    categories: tuple[str, ...] = ()
    score: float = 0.0
    reason: str = ""
    spans: tuple[Span, ...] = ()  # for REDACT: offsets into the text checked
    hook: str = ""  # filled in by the chain
    stage: Stage | None = None  # filled in by the chain
    latency_ms: float = 0.0  # filled in by the chain
    error: str = ""  # "timeout" or the exception, when the hook failed


ALLOW = Verdict(Action.ALLOW)


@dataclass(frozen=True)
class ModerationContext:
    conversation_id: str
    message_id: str
    user_id: str
    # The turns being answered ({"role", "content"}); the last is the user's message.
    messages: tuple[dict[str, str], ...] = ()


class Hook(Protocol):
    """A moderation hook: a `name`, and any of the three check methods.

    The methods are optional, so they are not part of the protocol's type;
    the chain looks them up with getattr and skips a hook that lacks one.
    """

    name: str


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sort spans and merge overlapping ones; touching spans stay apart.

    A merged span takes the replacement of its first span: two redactions
    that overlap become one marker rather than two half-markers.
    """
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.end <= span.start:
            continue  # empty: nothing to replace
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, span.end), last.replacement)
        else:
            merged.append(span)
    return merged


def apply_spans(text: str, spans: Sequence[Span]) -> str:
    """`text` with every span replaced; overlapping spans are merged first."""
    out: list[str] = []
    pos = 0
    for span in merge_spans(spans):
        start, end = max(span.start, 0), min(span.end, len(text))
        if start >= end:
            continue  # outside the text
        out.append(text[pos:start])
        out.append(span.replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)
