"""Stop strings cut streamed text before the first one, never sending part of one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference.stops import StopStrings


@pytest.mark.parametrize(
    ("pieces", "stops", "sent"),
    [
        (["Hel", "lo wo", "rld"], ("o w",), "Hell"),
        (["ab", "c"], ("abd",), "abc"),
        (["a", "STO", "P b"], ("STOP", "zz"), "a"),
        (["x"], (), "x"),
    ],
)
def test_cut_before_the_first_stop(pieces: list[str], stops: tuple[str, ...], sent: str) -> None:
    matcher = StopStrings(stops)
    out = [matcher.feed(piece) for piece in pieces]
    out.append(matcher.finish())
    assert "".join(out) == sent


@given(
    st.text(alphabet="abS", max_size=30),
    st.lists(st.integers(1, 5), max_size=10),
    st.text(alphabet="abS", min_size=1, max_size=3),
)
def test_any_split_gives_the_text_up_to_the_first_stop(text: str, cuts: list[int], stop: str) -> None:
    matcher = StopStrings([stop])
    pieces, at = [], 0
    for cut in cuts:
        pieces.append(text[at : at + cut])
        at += cut
    pieces.append(text[at:])
    sent = "".join(matcher.feed(piece) for piece in pieces) + matcher.finish()
    expected = text[: text.index(stop)] if stop in text else text
    assert sent == expected
    assert matcher.hit == (stop in text)
