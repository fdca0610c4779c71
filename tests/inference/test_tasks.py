"""The worker's task (inference/tasks.py): what the real-process tests do not show."""

from __future__ import annotations

import threading
import time

import pytest

from inference import tasks


def test_a_burst_is_picked_up_a_few_at_a_time_in_about_the_order_it_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock, opened = threading.Lock(), threading.Event()
    inside, most, claimed = [0], [0], []

    def claim(*, message_id: str) -> None:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            claimed.append(message_id)
        assert opened.wait(10)  # the first ones hold their places until every job has come
        time.sleep(0.005)
        with lock:
            inside[0] -= 1
        return None  # nothing to write: the job ends here

    monkeypatch.setattr(tasks.reply_jobs, "reply_claim", claim)
    jobs = [threading.Thread(target=tasks._write_reply, args=(f"reply-{i}",)) for i in range(24)]
    for job in jobs:  # one after another: the order they come in
        job.start()
        time.sleep(0.005)
    time.sleep(0.1)
    assert len(claimed) == tasks.PICKUPS_AT_ONCE  # the rest wait for a place
    opened.set()
    for job in jobs:
        job.join(10)
    assert most[0] == tasks.PICKUPS_AT_ONCE
    # Woken oldest first, the waiters race only with those woken at the same moment.
    assert sorted(claimed) == sorted(f"reply-{i}" for i in range(24))
    for place, message_id in enumerate(claimed):
        assert abs(int(message_id.split("-")[1]) - place) < tasks.PICKUPS_AT_ONCE
