"""Fold text for matching, keeping a map back to the original offsets.

Rules match on the folded text, but a redaction must point at the text the
user would see, so every folded character remembers which original
character it came from.

What folding catches, character by character:
- compatibility forms (NFKC): fullwidth `ｋｉｌｌ`, mathematical `𝐤𝐢𝐥𝐥`, circled
  `ⓚ`, ligatures `ﬁ`;
- case (casefold, so `ß` becomes `ss`);
- accents: combining marks are dropped, so `kíll` and `k` + U+0301 `ill` fold to `kill`;
- zero-width and other invisible format characters (category Cf, e.g. U+200B,
  U+200D, U+FEFF, soft hyphen) are removed;
- common Cyrillic and Greek look-alikes of Latin letters (`кill`, `κill`) and a
  few Latin ones (`ı`, `ł`, `ø`);
- with `leet=True`, leetspeak: 0→o 1→i 3→e 4→a 5→s 7→t @→a $→s.

What it does not catch: look-alikes outside the table (the full Unicode
confusables list is much longer), letters repeated (`kiiill`), letters
swapped, homophones, or words split by other letters.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Look-alikes that NFKC leaves alone, lower case only (they are looked up
# after casefolding). Kept to letters that are near-identical in common fonts.
_CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j",
    "к": "k", "ӏ": "l", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "ԁ": "d",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "ԛ": "q", "ԝ": "w", "ь": "b",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c",
    # Latin letters with a stroke or without a dot, which have no decomposition
    "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ɡ": "g",
}  # fmt: skip

_LEET: dict[str, str] = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}


@dataclass(frozen=True)
class Folded:
    """Folded text, and for each of its characters the index of its original character."""

    text: str
    origin: tuple[int, ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original `[start, end)` that folded `[start, end)` came from (end > start)."""
        return self.origin[start], self.origin[end - 1] + 1


@lru_cache(maxsize=4096)
def fold_char(char: str, leet: bool) -> str:
    """The folded form of one character: zero, one or several characters."""
    if unicodedata.category(char) == "Cf":
        return ""  # zero-width joiners, BOMs, soft hyphens: invisible, so ignored
    text = unicodedata.normalize("NFKC", char).casefold()
    # Decompose and drop combining marks so accented letters match plain ones.
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    table = _LEET if leet else {}
    return "".join(table.get(c, _CONFUSABLES.get(c, c)) for c in text)


_LEET_TABLE = str.maketrans(_LEET)


def fold(text: str, *, leet: bool = True) -> Folded:
    """Fold `text` character by character, recording where each folded character came from."""
    if text.isascii():
        # The common case, at C speed: an ASCII character folds to one character (its
        # lower case, then leetspeak); no look-alike, mark or invisible one is ASCII.
        lowered = text.lower()
        return Folded(lowered.translate(_LEET_TABLE) if leet else lowered, tuple(range(len(text))))
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = char if char.isascii() and char.islower() else fold_char(char, leet)
        out.append(folded)
        origin.extend([index] * len(folded))
    return Folded("".join(out), tuple(origin))
