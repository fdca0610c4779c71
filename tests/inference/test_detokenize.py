"""IncrementalDecoder's deltas add up to SentencePiece's decode, for any ids."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.chat_template import sentencepiece_processor
from inference.detokenize import IncrementalDecoder, decode

UNK, BOS, EOS = 0, 1, 2
BYTE_BASE = 3  # <0x00> is id 3, <0xFF> is id 258
VOCAB = 32000


def byte_ids(data: bytes) -> list[int]:
    return [BYTE_BASE + b for b in data]


def stream(ids: list[int]) -> tuple[list[str], str]:
    """Push every id, then flush; return the per-push deltas and the flushed rest."""
    decoder = IncrementalDecoder()
    deltas = [decoder.push(i) for i in ids]
    return deltas, decoder.flush()


def _space_pieces() -> list[int]:
    sp = sentencepiece_processor()
    return [i for i in range(VOCAB) if sp.id_to_piece(i).startswith("\u2581")]


SPACE_PIECES = _space_pieces()
# "▁" alone decodes to nothing at the start yet still ends the start state.
SPACE, DOUBLE_SPACE = (
    sentencepiece_processor().piece_to_id("\u2581"),
    sentencepiece_processor().piece_to_id("\u2581\u2581"),
)


def _incomplete_prefixes() -> frozenset[bytes]:
    """Every proper prefix of a valid multi-byte UTF-8 character (an independent oracle)."""
    prefixes = set()
    # Stepping by 64 visits every value of all bytes but the last; surrogates are
    # 64-aligned, so skipping them drops exactly their prefixes.
    for code in range(0x80, 0x110000, 64):
        if 0xD800 <= code <= 0xDFFF:
            continue
        data = chr(code).encode("utf-8")
        prefixes.update(data[:k] for k in range(1, len(data)))
    return frozenset(prefixes)


INCOMPLETE_PREFIXES = _incomplete_prefixes()

any_id = st.integers(0, VOCAB - 1)
byte_id = st.integers(BYTE_BASE, BYTE_BASE + 255)
control_id = st.sampled_from([UNK, BOS, EOS])
space_piece = st.one_of(st.sampled_from([SPACE, DOUBLE_SPACE]), st.sampled_from(SPACE_PIECES))
# Valid UTF-8 of all lengths, split into one byte piece per byte.
utf8_run = st.text(min_size=1, max_size=4).map(lambda s: byte_ids(s.encode("utf-8")))
# Lead bytes, continuation bytes and the edge values where validity flips.
edge_byte = st.sampled_from(
    [0x00, 0x20, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0]
    + [0xF4, 0xF5, 0xF7, 0xF8, 0xFF]
).map(lambda b: BYTE_BASE + b)

segment = st.one_of(
    any_id.map(lambda i: [i]),
    control_id.map(lambda i: [i]),
    space_piece.map(lambda i: [i]),
    utf8_run,
    # A valid character cut short, or with a stray byte inside.
    utf8_run.map(lambda run: run[:-1]),
    st.lists(edge_byte, min_size=1, max_size=5),
    st.lists(byte_id, min_size=1, max_size=5),
)
id_lists = st.lists(segment, max_size=12).map(lambda parts: [i for part in parts for i in part])


@settings(max_examples=500, deadline=None)
@given(id_lists)
def test_deltas_add_up_to_decode(ids: list[int]) -> None:
    decoder = IncrementalDecoder()
    expected = decode(ids)
    deltas = []
    for count, token_id in enumerate(ids, start=1):
        deltas.append(decoder.push(token_id))
        # Deltas are final: what is out so far is a prefix of the full decode, and
        # of the decode of the ids so far (only a held-back tail differs).
        assert decoder.text == "".join(deltas)
        assert expected.startswith(decoder.text)
        so_far = decode(ids[:count])
        assert so_far.startswith(decoder.text)
        # Only an incomplete character that could still turn valid is held back
        # (each of its bytes would decode to U+FFFD if the stream ended here).
        held = len(so_far) - len(decoder.text)
        if held:
            assert so_far[-held:] == "\ufffd" * held
            tail = ids[count - held : count]
            assert all(BYTE_BASE <= i < BYTE_BASE + 256 for i in tail)
            assert bytes(i - BYTE_BASE for i in tail) in INCOMPLETE_PREFIXES
    rest = decoder.flush()
    assert "".join(deltas) + rest == expected
    assert decoder.text == expected
    assert decoder.flush() == ""


@settings(max_examples=300, deadline=None)
@given(st.lists(any_id, max_size=60))
def test_uniform_random_ids(ids: list[int]) -> None:
    deltas, rest = stream(ids)
    assert "".join(deltas) + rest == decode(ids)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(byte_id, edge_byte), max_size=40))
def test_pure_byte_runs(ids: list[int]) -> None:
    deltas, rest = stream(ids)
    assert "".join(deltas) + rest == decode(ids)
    # At most one incomplete character (3 bytes) is ever held back.
    assert len(rest) <= 3


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_round_trips_encoded_text(text: str) -> None:
    ids = sentencepiece_processor().encode(text)
    deltas, rest = stream(ids)
    assert "".join(deltas) + rest == decode(ids)


@pytest.mark.parametrize("text", ["😀", "👨‍👩‍👧", "中文", "𓀀", "é", "\u0800", "\U0010ffff"])
def test_multibyte_character_split_over_byte_pieces(text: str) -> None:
    data = text.encode("utf-8")
    deltas, rest = stream(byte_ids(data))
    assert "".join(deltas) == text and rest == ""
    # Nothing comes out until each character is complete, then all of it at once.
    assert [d for d in deltas if d] == list(text)


def test_emoji_is_held_back_until_its_last_byte() -> None:
    decoder = IncrementalDecoder()
    data = "😀".encode()  # F0 9F 98 80
    assert [decoder.push(i) for i in byte_ids(data)] == ["", "", "", "😀"]


def test_leading_space_of_first_piece_is_dropped() -> None:
    sp = sentencepiece_processor()
    ids = sp.encode("Hello world")  # "▁Hello", "▁world"
    assert stream(ids) == (["Hello", " world"], "")
    # Leading <s> and </s> are invisible and do not end the start state.
    assert stream([BOS, EOS, *ids]) == (["", "", "Hello", " world"], "")


def test_only_one_leading_space_symbol_is_dropped() -> None:
    sp = sentencepiece_processor()
    space, double_space = sp.piece_to_id("\u2581"), sp.piece_to_id("\u2581\u2581")
    hello = sp.piece_to_id("\u2581Hello")
    assert stream([space, hello]) == (["", " Hello"], "") == (["", decode([space, hello])], "")
    assert stream([double_space, hello]) == ([" ", " Hello"], "")
    assert decode([double_space, hello]) == "  Hello"


def test_text_before_a_space_piece_keeps_its_space() -> None:
    sp = sentencepiece_processor()
    hello = sp.piece_to_id("\u2581Hello")
    assert "".join(stream([UNK, hello])[0]) == decode([UNK, hello]) == " ⁇  Hello"
    # A byte piece is visible text too, so the next piece keeps its space.
    assert "".join(stream([*byte_ids(b"x"), hello])[0]) == decode([*byte_ids(b"x"), hello]) == "x Hello"


def test_control_ids() -> None:
    assert decode([BOS]) == decode([EOS]) == ""
    assert decode([UNK]) == " ⁇ "
    decoder = IncrementalDecoder()
    assert [decoder.push(i) for i in (BOS, EOS, UNK, UNK)] == ["", "", " ⁇ ", " ⁇ "]


def test_incomplete_trailing_character_is_flushed_as_replacements() -> None:
    decoder = IncrementalDecoder()
    assert [decoder.push(i) for i in byte_ids("€".encode()[:2])] == ["", ""]  # E2 82
    # SentencePiece replaces each byte of a cut-off character, not the whole.
    assert decoder.flush() == "\ufffd\ufffd" == decode(byte_ids(b"\xe2\x82"))
    assert decoder.text == "\ufffd\ufffd"


def test_incomplete_character_cut_by_a_normal_piece() -> None:
    sp = sentencepiece_processor()
    ids = [*byte_ids(b"\xf0\x9f"), sp.piece_to_id("\u2581a")]
    deltas, rest = stream(ids)
    assert deltas == ["", "", "\ufffd\ufffd a"] and rest == ""
    assert "".join(deltas) == decode(ids)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff", "\ufffd"),
        (b"\x80", "\ufffd"),
        (b"\xc0\x80", "\ufffd\ufffd"),  # overlong
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),  # surrogate
        (b"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"),  # beyond U+10FFFF
        (b"\xe2\x28\xa1", "\ufffd(\ufffd"),
        (b"\xe2\x82\xac\xff", "€\ufffd"),
        (b"a\xe2\x82\xacb", "a€b"),
    ],
)
def test_invalid_bytes_become_one_replacement_each(data: bytes, expected: str) -> None:
    ids = byte_ids(data)
    assert decode(ids) == expected
    deltas, rest = stream(ids)
    assert "".join(deltas) + rest == expected


def test_invalid_byte_is_released_at_once() -> None:
    decoder = IncrementalDecoder()
    assert decoder.push(BYTE_BASE + 0xFF) == "\ufffd"
    assert decoder.push(BYTE_BASE + 0xE2) == ""
    assert decoder.push(BYTE_BASE + 0x41) == "\ufffdA"  # E2 cannot be followed by "A"


def test_streams_a_real_multilingual_reply() -> None:
    text = "Sure! 😀 Here is 中文, עברית and 𓀀𓁐 code:\n```py\nprint('hi')\n```\n"
    ids = sentencepiece_processor().encode(text)
    assert any(BYTE_BASE <= i < BYTE_BASE + 256 for i in ids)  # exercises byte fallback
    deltas, rest = stream(ids)
    assert "".join(deltas) + rest == text == decode(ids)


def test_out_of_range_ids_raise_like_sentencepiece() -> None:
    for bad in (-1, VOCAB):
        with pytest.raises(IndexError):
            decode([bad])
        with pytest.raises(IndexError):
            IncrementalDecoder().push(bad)


def test_empty_stream() -> None:
    decoder = IncrementalDecoder()
    assert decoder.flush() == "" and decoder.text == "" and decode([]) == ""


def test_long_reply_is_linear_time() -> None:
    sp = sentencepiece_processor()
    ids = sp.encode("Ünïcödé 😀 中文 text with byte fallback 𓀀. " * 1500)[:30000]
    ids += byte_ids("😀".encode() * 2000)
    start = time.perf_counter()
    deltas, rest = stream(ids)
    elapsed = time.perf_counter() - start
    assert "".join(deltas) + rest == decode(ids)
    assert elapsed < 2.0, f"{len(ids)} ids took {elapsed:.2f} s"
