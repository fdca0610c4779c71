"""Where a burst's time goes: each reply's moments, and every process's CPU over the burst.

`bench/stack.py --trace DIR` writes one JSON file per point and tree:

- `replies`: per reply, in the order sent, milliseconds from the first send
  to its send, its `start` event, its first `token`, its `done`, and the
  worker's own `queue_ms` and `ttft_ms` from `done`'s stats;
- `cpu`: every `interval_s`, the cores each role used over that interval:
  the worker's and Daphne's process trees, PostgreSQL's and Redis's
  processes (by name: they are shared by both trees of a run), and this
  benchmark's clients; user and system time apart, as `<role>` and
  `<role>_sys` (system time is most of a thread hand-off's cost).

Read it to see which stage a burst waits for: a `start` late with Daphne at
a full core, a `queue` wait with the worker's, or every process busy at once
(the cores are the limit).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import process_tree, stat_fields

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _times(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of one process, its threads included."""
    fields = stat_fields(pid)
    return None if fields is None else (int(fields[11]) * TICK_S, int(fields[12]) * TICK_S)


def _named(names: Iterable[str]) -> list[int]:
    """Every process whose command is one of `names` (PostgreSQL's backends, Redis)."""
    wanted, found = set(names), []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in wanted:
                found.append(int(comm.parent.name))
        except OSError:
            continue
    return found


@dataclass
class CpuSampler:
    """Samples the CPU of each role every `interval_s` in a thread, from `start()` to `stop()`.

    `roles` maps a role to a function listing its pids, called once, at
    `start()`: listing every process at each sample cost the clients more
    CPU than the sampling (a warmed stack's pooled connections, and so
    PostgreSQL's backends, are open by then).
    """

    roles: dict[str, Callable[[], list[int]]]
    interval_s: float = 0.05
    samples: list[dict[str, float]] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def for_stack(cls, worker: int, daphnes: list[int], interval_s: float = 0.05) -> CpuSampler:
        return cls(
            {
                "worker": lambda: process_tree(worker),
                "daphne": lambda: [pid for daphne in daphnes for pid in process_tree(daphne)],
                "postgres": lambda: _named(["postgres"]),
                "redis": lambda: _named(["redis-server"]),
                "clients": lambda: [os.getpid()],
            },
            interval_s,
        )

    def _read(self, pids: dict[str, list[int]]) -> dict[str, dict[int, tuple[float, float]]]:
        return {
            role: {pid: t for pid in listed if (t := _times(pid)) is not None}
            for role, listed in pids.items()
        }

    def _run(self, pids: dict[str, list[int]]) -> None:
        before, since = self._read(pids), time.perf_counter()
        while not self._stopping.wait(self.interval_s):
            after, now = self._read(pids), time.perf_counter()
            sample = {"t_ms": round((now - self.started) * 1000.0, 1)}
            for role, times in after.items():
                user = sum(u - before[role].get(pid, (u, s))[0] for pid, (u, s) in times.items())
                system = sum(s - before[role].get(pid, (u, s))[1] for pid, (u, s) in times.items())
                sample[role] = round((user + system) / (now - since), 2)
                sample[f"{role}_sys"] = round(system / (now - since), 2)
            self.samples.append(sample)
            before, since = after, now

    def start(self) -> None:
        pids = {role: listed() for role, listed in self.roles.items()}
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, args=(pids,), name="cpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()


def write_trace(path: Path, replies: list[Any], sampler: CpuSampler | None) -> None:
    """The replies' moments (bench.stack.Reply) and the sampler's CPU, as one JSON file."""
    first = min(reply.sent for reply in replies)

    def ms(moment: float | None) -> float | None:
        return None if moment is None else round((moment - first) * 1000.0, 1)

    rows = [
        {
            "sent": ms(reply.sent),
            "start": ms(reply.started),
            "first_token": ms(reply.first),
            "done": ms(reply.done),
            "queue_ms": reply.queue_ms,
            "worker_ttft_ms": reply.worker_ttft_ms,
        }
        for reply in replies
    ]
    # The sampler's clock started just before the first send: shift it onto the replies'.
    offset = (sampler.started - first) * 1000.0 if sampler is not None else 0.0
    cpu = [{**s, "t_ms": round(s["t_ms"] + offset, 1)} for s in (sampler.samples if sampler else [])]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"replies": rows, "cpu": cpu}, indent=1))
