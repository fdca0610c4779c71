"""bench/burst_trace.py: the CPU sampler and the trace file that `bench/stack.py --trace` writes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

from bench.burst_trace import CpuSampler, write_trace


def burn(seconds: float) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass


def test_the_sampler_sees_a_busy_process_busy_and_an_idle_one_idle() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        roles = {"me": lambda: [os.getpid()], "sleeper": lambda: [sleeper.pid], "gone": lambda: [2**22 + 7]}
        sampler = CpuSampler(roles, 0.05)
        sampler.start()
        burn(0.4)
        sampler.stop()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert len(sampler.samples) >= 4
    times = [sample["t_ms"] for sample in sampler.samples]
    assert times == sorted(times) and times[0] > 0
    # The CPU it read over the samples is the 0.4 s burnt, whatever share of a core this
    # process got (the clock ticks every 10 ms; the sampler's own reads add a little).
    seen = sum(
        s["me"] * (s["t_ms"] - before) / 1000
        for s, before in zip(sampler.samples, [0.0, *times[:-1]], strict=True)
    )
    assert 0.3 <= seen <= 0.6
    assert all(sample["sleeper"] == 0 for sample in sampler.samples)
    assert all(sample["gone"] == 0 for sample in sampler.samples)  # a process that is not there reads 0
    assert all(0 <= sample["me_sys"] <= sample["me"] + 0.01 for sample in sampler.samples)


def test_a_trace_holds_each_replys_moments_from_the_first_send_and_the_cpu_on_that_clock(
    tmp_path: Path,
) -> None:
    sampler = CpuSampler({"me": lambda: [os.getpid()]}, 0.02)
    sampler.start()
    t0 = time.perf_counter()
    burn(0.1)
    sampler.stop()
    replies = [
        SimpleNamespace(
            sent=t0 + 0.001,
            started=t0 + 0.010,
            first=t0 + 0.050,
            done=t0 + 2.0,
            queue_ms=3.5,
            worker_ttft_ms=12.0,
        ),
        SimpleNamespace(
            sent=t0, started=None, first=None, done=None, queue_ms=None, worker_ttft_ms=None
        ),  # lost
    ]
    path = tmp_path / "traces" / "point.json"
    write_trace(path, replies, sampler)
    trace = json.loads(path.read_text())
    assert trace["replies"] == [
        {
            "sent": 1.0,
            "start": 10.0,
            "first_token": 50.0,
            "done": 2000.0,
            "queue_ms": 3.5,
            "worker_ttft_ms": 12.0,
        },
        {
            "sent": 0.0,
            "start": None,
            "first_token": None,
            "done": None,
            "queue_ms": None,
            "worker_ttft_ms": None,
        },
    ]
    # The samples are put on the replies' clock: milliseconds from the first send (t0).
    shift = (sampler.started - t0) * 1000
    assert shift < 0  # the sampler started before the first send
    assert [c["t_ms"] for c in trace["cpu"]] == [round(s["t_ms"] + shift, 1) for s in sampler.samples]
    assert [c["me"] for c in trace["cpu"]] == [s["me"] for s in sampler.samples] and trace["cpu"]
