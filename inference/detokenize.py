"""Incremental detokenization of a streamed reply that never splits a character.

``IncrementalDecoder`` turns ids into text as they arrive, and the deltas it
returns always add up to exactly ``decode(ids)`` (the SentencePiece decode of all
ids), at O(1) cost per id. It replays SentencePiece's own decoder piece by piece
(``DecodeSentencePiece``/``ProcessBytePieces`` in sentencepiece_processor.cc):

- ``<s>`` and ``</s>`` decode to nothing, ``<unk>`` to the unknown surface " ⁇ ".
- "▁" becomes a space; the leading "▁" of the first piece is dropped (the dummy
  prefix), where "first" means before any visible text: leading ``<s>``/``</s>``
  do not end that state; bytes, ``<unk>`` or a piece that consumed a "▁" do.
- Byte-fallback pieces ``<0x..>`` are gathered into runs and decoded one
  character at a time; a byte that does not start a complete, valid UTF-8
  character becomes U+FFFD and decoding resumes at the next byte (one U+FFFD per
  bad byte, unlike Python's ``errors="replace"``). A run is only cut by a
  non-byte piece or the end, so an incomplete character is held back until it
  completes, turns invalid, or the stream ends.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from inference.chat_template import sentencepiece_processor

_SPACE_SYMBOL = "\u2581"
_REPLACEMENT = "\ufffd"


def decode(ids: Sequence[int]) -> str:
    """The reference: SentencePiece's decode of all ``ids`` at once."""
    return sentencepiece_processor().decode([int(i) for i in ids])


class _Vocab:
    """Per-id facts the decoder needs, computed once from the processor."""

    def __init__(self) -> None:
        processor = sentencepiece_processor()
        size = processor.get_piece_size()
        self.size = size
        # Text of each non-byte piece with "▁" already turned into spaces, whether it
        # starts with "▁", and the byte value of each byte piece (-1 for others).
        self.surface: list[str] = []
        self.leading_space: list[bool] = []
        self.byte: list[int] = []
        for i in range(size):
            piece = processor.id_to_piece(i)
            if processor.is_byte(i):
                self.byte.append(int(piece[3:5], 16))  # "<0xAB>"
                self.surface.append("")
                self.leading_space.append(False)
                continue
            self.byte.append(-1)
            if processor.is_control(i):
                surface = ""
            elif processor.is_unknown(i):
                # The unknown surface is configurable per model: ask the decoder.
                surface = processor.decode([i])
            else:
                surface = piece.replace(_SPACE_SYMBOL, " ")
            self.surface.append(surface)
            # Only normal pieces can have their leading "▁" consumed at the start.
            self.leading_space.append(
                not processor.is_control(i)
                and not processor.is_unknown(i)
                and piece.startswith(_SPACE_SYMBOL)
            )


@functools.cache
def _vocab() -> _Vocab:
    return _Vocab()


def _char_length(lead: int) -> int:
    """Length of the UTF-8 character a lead byte announces; 0 if it can start none."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0  # continuation byte, overlong lead C0/C1, or beyond U+10FFFF


def _is_valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _can_complete(partial: bytes, length: int) -> bool:
    """Whether some continuation bytes turn ``partial`` into a valid ``length``-byte character."""
    # Only the second byte has a restricted range (E0, ED, F0, F4), and each such
    # range contains 0x80 or 0xBF, so trying both fillers decides it.
    missing = length - len(partial)
    return _is_valid(partial + b"\x80" * missing) or _is_valid(partial + b"\xbf" * missing)


class IncrementalDecoder:
    """Streams text for ids pushed one at a time; deltas are final, never retracted."""

    def __init__(self) -> None:
        self._vocab = _vocab()
        self._pending = bytearray()  # bytes of an unfinished run, at most 3 held back
        self._parts: list[str] = []
        self._emitted_any = False
        self._at_start = True  # the next "▁"-leading piece may lose its "▁"
        self._consumed_space = False  # the previous non-byte piece lost its "▁"

    @property
    def text(self) -> str:
        """All text returned so far."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def push(self, token_id: int) -> str:
        """Add one id; return the newly stable text ("" while a character is incomplete)."""
        vocab = self._vocab
        if not 0 <= token_id < vocab.size:
            raise IndexError(f"token id {token_id} is out of range [0, {vocab.size})")
        byte = vocab.byte[token_id]
        if byte >= 0:
            self._pending.append(byte)
            return self._emit(self._drain(final=False))
        out = self._drain(final=True)
        # Same order as SentencePiece: the start state ends once text exists or a
        # "▁" was consumed, judged before decoding this piece.
        if self._consumed_space or self._emitted_any or out:
            self._at_start = False
        surface = vocab.surface[token_id]
        self._consumed_space = self._at_start and vocab.leading_space[token_id]
        if self._consumed_space:
            surface = surface[1:]
        return self._emit(out + surface)

    def flush(self) -> str:
        """End of stream: return everything held back (bad or cut-off bytes as U+FFFD)."""
        return self._emit(self._drain(final=True))

    def _emit(self, delta: str) -> str:
        if delta:
            self._parts.append(delta)
            self._emitted_any = True
        return delta

    def _drain(self, *, final: bool) -> str:
        """Decode pending bytes as far as is certain; with ``final`` the run has ended."""
        pending = self._pending
        out: list[str] = []
        start = 0
        while start < len(pending):
            length = _char_length(pending[start])
            available = len(pending) - start
            if length and available >= length:
                chunk = bytes(pending[start : start + length])
                if _is_valid(chunk):
                    out.append(chunk.decode("utf-8"))
                    start += length
                    continue
            elif length and not final and _can_complete(bytes(pending[start:]), length):
                break  # wait for the rest of the character
            out.append(_REPLACEMENT)
            start += 1
        del pending[:start]
        return "".join(out)
