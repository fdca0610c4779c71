"""Folding: the ASCII fast path gives what the character-by-character fold gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from inference.moderation.normalize import Folded, fold, fold_char


def slow_fold(text: str, *, leet: bool) -> Folded:
    out, origin = [], []
    for index, char in enumerate(text):
        folded = fold_char(char, leet)
        out.append(folded)
        origin += [index] * len(folded)
    return Folded("".join(out), tuple(origin))


@given(st.text(alphabet=st.characters(max_codepoint=127)), st.booleans())
def test_ascii_text_folds_as_each_character_would(text: str, leet: bool) -> None:
    assert fold(text, leet=leet) == slow_fold(text, leet=leet)


@given(st.text(), st.booleans())
def test_any_text_folds_as_each_character_would(text: str, leet: bool) -> None:
    assert fold(text, leet=leet) == slow_fold(text, leet=leet)


def test_leetspeak_and_case_fold_on_the_fast_path() -> None:
    assert fold("K1LL $h3 @ll").text == "kill she all"
    assert fold("K1LL", leet=False).text == "k1ll"
