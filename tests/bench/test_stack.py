"""bench/stack.py: the `--reply-tokens` lengths, a fixed length or a range drawn per message."""

from __future__ import annotations

import argparse

import pytest

from bench.stack import parse_lengths, reply_lengths


def test_one_number_is_a_fixed_length_and_a_range_its_ends() -> None:
    assert parse_lengths("250") == (250, 250)
    assert parse_lengths("200-320") == (200, 320)


@pytest.mark.parametrize("text", ["", "x", "200-", "-5", "0", "320-200", "1-2-3"])
def test_a_length_that_is_not_n_or_a_range_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_lengths(text)


def test_each_message_gets_a_length_in_the_range_the_same_on_every_call() -> None:
    length = reply_lengths(200, 320)
    drawn = [length(chat, round_) for chat in range(64) for round_ in range(4)]
    assert all(200 <= value <= 320 for value in drawn)
    assert drawn == [reply_lengths(200, 320)(chat, round_) for chat in range(64) for round_ in range(4)]
    # Spread, and a chat's rounds differ: the replies do not end together.
    assert len(set(drawn)) > 60
    assert len({length(0, round_) for round_ in range(4)}) > 1
