"""The encodings of texts already seen, so that a conversation's earlier turns are encoded once.

Every reply's prompt is its whole conversation, and the worker built it by
encoding every turn again: 3 ms of one core for 2,000 tokens of text, 6 ms
for a 10,000-token history, on the worker's one GIL, before the reply's
first token. Turns do not change once written, and each is encoded on its
own (`inference.chat_template`), so an earlier turn's ids can be looked up
instead. Plain Python, thread-safe (the job threads build prompts at once).

Keys are a 128-bit BLAKE2 digest of the text, not the text itself, so the
cache holds ids only (two bytes each: Mistral's vocabulary has 32,000), at
most `max_ids` of them, the least recently used dropped first. Each entry
also counts `ENTRY_IDS` for its own keeping (its key, array and place in the
order, ~250 bytes), so that many short texts cannot hold more memory than a
few long ones: at most ~4 MB of ids, or ~3.5 MB of short entries.
"""

from __future__ import annotations

import hashlib
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable

# ~4 MB of ids: the histories of a few hundred long conversations.
DEFAULT_MAX_IDS = 2_000_000
# Shorter texts are encoded again: a lookup saves nothing on them.
MIN_CHARS = 64
# What keeping one entry costs, counted in ids (two bytes each).
ENTRY_IDS = 128


class TokenCache:
    """`encode(text)` through `encoder`, remembering the ids of texts of `MIN_CHARS` or more."""

    def __init__(self, encoder: Callable[[str], list[int]], *, max_ids: int = DEFAULT_MAX_IDS) -> None:
        self._encoder = encoder
        self.max_ids = max_ids
        self._lock = threading.Lock()
        self._ids: OrderedDict[bytes, array] = OrderedDict()
        self.size = 0  # ids held, and ENTRY_IDS for each entry
        self.hits = 0
        self.misses = 0

    def encode(self, text: str) -> list[int]:
        if len(text) < MIN_CHARS:
            return self._encoder(text)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            found = self._ids.get(key)
            if found is not None:
                self._ids.move_to_end(key)
                self.hits += 1
                return found.tolist()
            self.misses += 1
        ids = self._encoder(text)  # outside the lock: two threads may encode one text, never wrongly
        self._remember(key, ids)
        return ids

    def _remember(self, key: bytes, ids: list[int]) -> None:
        cost = len(ids) + ENTRY_IDS
        if cost > self.max_ids:
            return
        try:
            packed = array("H", ids)
        except OverflowError:  # a vocabulary over 65,536
            packed = array("I", ids)
        with self._lock:
            if key in self._ids:
                return
            self._ids[key] = packed
            self.size += cost
            while self.size > self.max_ids:
                _, dropped = self._ids.popitem(last=False)
                self.size -= len(dropped) + ENTRY_IDS
