"""Actions, spans and redaction."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from inference.moderation.base import (
    API_CATEGORIES,
    CATEGORIES,
    PROFANITY,
    Action,
    Span,
    apply_spans,
    merge_spans,
    most_severe,
)


def test_the_moderation_apis_nine_categories_then_profanity() -> None:
    assert len(API_CATEGORIES) == 9 and "pii" in API_CATEGORIES and PROFANITY not in API_CATEGORIES
    assert CATEGORIES[:9] == API_CATEGORIES and CATEGORIES[9:] == ("profanity",)


def test_most_severe_orders_actions() -> None:
    assert most_severe([]) is Action.ALLOW
    assert most_severe([Action.FLAG, Action.BLOCK, Action.REDACT]) is Action.BLOCK
    assert most_severe([Action.FLAG, Action.REDACT]) is Action.REDACT


def test_apply_spans_replaces_in_place() -> None:
    assert apply_spans("call 555 now", [Span(5, 8, "[phone]")]) == "call [phone] now"
    assert apply_spans("abc", []) == "abc"


def test_apply_spans_merges_overlaps_and_sorts() -> None:
    spans = [Span(6, 11, "[b]"), Span(0, 4, "[a]"), Span(2, 7, "[c]")]
    assert merge_spans(spans) == [Span(0, 11, "[a]")]
    assert apply_spans("hello world!", spans) == "[a]!"


def test_apply_spans_keeps_touching_spans_apart_and_ignores_empty() -> None:
    assert apply_spans("abcd", [Span(2, 4, "Y"), Span(0, 2, "X"), Span(1, 1, "Z")]) == "XY"


def test_apply_spans_clamps_to_text() -> None:
    assert apply_spans("abc", [Span(2, 10, "!"), Span(7, 9, "?")]) == "ab!"


@given(st.text(max_size=40), st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=5))
def test_apply_spans_keeps_text_outside_spans(text: str, raw: list[tuple[int, int]]) -> None:
    spans = [Span(min(a, b), max(a, b), "#") for a, b in raw]
    out = apply_spans(text, spans)
    covered = {i for s in spans for i in range(s.start, min(s.end, len(text)))}
    assert out.replace("#", "") == "".join(c for i, c in enumerate(text) if i not in covered).replace("#", "")
