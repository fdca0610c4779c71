"""The worker's side of a reply: what is not covered through the socket tests."""

from __future__ import annotations

import threading

import pytest

from webapp.chat.reply_jobs import QueueAnnouncer


def test_moves_during_an_announcement_fold_into_one_more_after_it() -> None:
    """A burst of claims costs a few announcements, not one each, and the last starts after the last move."""
    running, release = threading.Event(), threading.Event()
    moves_seen: list[int] = []
    moves = [0]

    def announce() -> None:
        moves_seen.append(moves[0])
        if len(moves_seen) == 1:
            running.set()
            assert release.wait(10)

    announcer = QueueAnnouncer(announce)
    first = threading.Thread(target=announcer.moved)
    moves[0] += 1
    first.start()
    assert running.wait(10)
    for _ in range(20):  # claims landing while the first announcement runs: none waits for it
        moves[0] += 1
        announcer.moved()
    release.set()
    first.join(10)
    assert moves_seen == [1, 21]
    announcer.moved()  # the queue moves again later: announced again
    assert moves_seen == [1, 21, 21]


def test_a_failed_announcement_does_not_stop_the_next() -> None:
    calls = [0]

    def announce() -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise ConnectionError("Redis went away")

    announcer = QueueAnnouncer(announce)
    with pytest.raises(ConnectionError):
        announcer.moved()
    announcer.moved()
    assert calls[0] == 2
