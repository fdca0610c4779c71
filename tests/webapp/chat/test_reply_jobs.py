"""The worker's side of a reply: what is not covered through the socket tests."""

from __future__ import annotations

import threading
import time

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


def wait_for(condition, timeout: float = 10.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_once_started_a_burst_of_moves_is_announced_once_after_it_on_the_announcers_thread() -> None:
    threads: list[str] = []
    announcer = QueueAnnouncer(lambda: threads.append(threading.current_thread().name), interval_s=0.2)
    announcer.start()
    for _ in range(50):  # a burst of claims: each returns at once, none announces itself
        announcer.moved()
    assert threads == []
    assert wait_for(lambda: len(threads) == 1)
    time.sleep(0.4)  # the queue is still: nothing more
    assert threads == ["queue-announcer"]
    announcer.moved()  # it moves again later: announced again
    assert wait_for(lambda: len(threads) == 2)


def test_once_started_a_failed_announcement_is_logged_and_the_next_move_announces_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = [0]

    def announce() -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise ConnectionError("Redis went away")

    announcer = QueueAnnouncer(announce, interval_s=0.01)
    announcer.start()
    announcer.moved()
    assert wait_for(lambda: calls[0] == 1)
    assert wait_for(lambda: "could not announce queue positions" in caplog.text)
    announcer.moved()
    assert wait_for(lambda: calls[0] == 2)
