"""inference/token_cache.py: encodings remembered by digest, bounded, the same ids as encoding again."""

from __future__ import annotations

import threading

from inference.token_cache import ENTRY_IDS, MIN_CHARS, TokenCache


class CountingEncoder:
    """A stand-in tokenizer: one id per character (its code point), counting its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, text: str) -> list[int]:
        self.calls.append(text)
        return [ord(character) for character in text]


LONG = "x" * MIN_CHARS


def test_a_long_text_is_encoded_once_and_then_looked_up() -> None:
    encoder = CountingEncoder()
    cache = TokenCache(encoder)
    first = cache.encode(LONG + "a")
    second = cache.encode(LONG + "a")
    assert first == second == encoder(LONG + "a")
    assert encoder.calls.count(LONG + "a") == 2  # once by the cache, once above
    assert (cache.hits, cache.misses, cache.size) == (1, 1, MIN_CHARS + 1 + ENTRY_IDS)


def test_a_looked_up_encoding_is_a_fresh_list() -> None:
    cache = TokenCache(CountingEncoder())
    ids = cache.encode(LONG)
    ids.append(0)  # the prompt builder extends what it gets
    assert cache.encode(LONG) == [ord("x")] * MIN_CHARS


def test_a_short_text_is_encoded_every_time_and_not_kept() -> None:
    encoder = CountingEncoder()
    cache = TokenCache(encoder)
    for _ in range(3):
        assert cache.encode("short") == [ord(c) for c in "short"]
    assert len(encoder.calls) == 3
    assert cache.size == 0


def test_texts_that_differ_get_their_own_ids() -> None:
    cache = TokenCache(CountingEncoder())
    texts = [LONG + suffix for suffix in ("a", "b", "é", "中", "😀", "\ud800")]
    for text in texts * 2:
        assert cache.encode(text) == [ord(c) for c in text]
    assert cache.hits == len(texts)


def test_at_most_max_ids_are_kept_the_least_recently_used_dropped_first() -> None:
    encoder = CountingEncoder()
    cache = TokenCache(encoder, max_ids=3 * (MIN_CHARS + 1 + ENTRY_IDS))
    a, b, c, d = (LONG + letter for letter in "abcd")
    for text in (a, b, c):
        cache.encode(text)
    cache.encode(a)  # used again: b is now the oldest
    cache.encode(d)
    assert cache.size <= cache.max_ids
    encoder.calls.clear()
    for text in (a, c, d):
        cache.encode(text)
    assert encoder.calls == []
    cache.encode(b)
    assert encoder.calls == [b]


def test_a_text_longer_than_the_whole_cache_is_encoded_but_not_kept() -> None:
    cache = TokenCache(CountingEncoder(), max_ids=MIN_CHARS + ENTRY_IDS)
    text = LONG * 2
    assert cache.encode(text) == [ord("x")] * len(text)
    assert cache.size == 0


def test_ids_beyond_two_bytes_are_kept_exactly() -> None:
    cache = TokenCache(lambda text: [70_000 + len(text), 1, 65_535])
    assert cache.encode(LONG) == cache.encode(LONG) == [70_000 + MIN_CHARS, 1, 65_535]


def test_threads_encoding_at_once_all_get_their_texts_ids() -> None:
    cache = TokenCache(CountingEncoder(), max_ids=20 * (MIN_CHARS + ENTRY_IDS))  # evictions while they run
    texts = [LONG + str(number) for number in range(40)]
    wrong: list[str] = []

    def work(offset: int) -> None:
        for round_ in range(30):
            text = texts[(offset + round_ * 7) % len(texts)]
            if cache.encode(text) != [ord(c) for c in text]:
                wrong.append(text)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert cache.size <= cache.max_ids


def test_each_entry_counts_its_keeping_so_short_texts_cannot_fill_memory() -> None:
    cache = TokenCache(CountingEncoder(), max_ids=10 * (MIN_CHARS + ENTRY_IDS))
    for number in range(1000):
        cache.encode(LONG + str(number).rjust(4))
    assert len(cache._ids) <= 10
    assert cache.size <= cache.max_ids
