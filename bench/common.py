"""Helpers shared by the benchmark scripts: percentiles, tables, and the machine they ran on."""

from __future__ import annotations

import os
import platform
import secrets
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import process_tree, stat_fields


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_description() -> str:
    """One line: cores, CPU model, torch/transformers versions, GPU or none, load average."""
    import torch
    import transformers

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cores} cores ({cpu_model()}), {gpu}; torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads), transformers {transformers.__version__}, "
        f"Python {platform.python_version()}; load average before the run: {load}"
    )


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool) -> str:
    """Right-aligned plain-text table, or a GitHub markdown table."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" ---: " for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def median_ms(run: Callable[[], object], repeat: int) -> float:
    """The median wall time of `repeat` calls, in milliseconds."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def cpu_seconds(pid: int) -> dict[int, float]:
    """CPU time (user + system, children it reaped included) of each process in `pid`'s tree."""
    seconds = {}
    for member in process_tree(pid):
        fields = stat_fields(member)
        if fields is not None:
            seconds[member] = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return seconds


def top_frames(collapsed: Path, count: int = 15) -> str:
    """The frames on top of a collapsed-stacks profile (py-spy `--format raw`) most often, with their share."""
    own: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if ";" in stack:  # not a bare process frame (py-spy --gil: the GIL held outside Python)
            own[stack.rsplit(";", 1)[-1]] += int(samples)
    total = sum(own.values()) or 1
    return "\n".join(f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(count))


@contextmanager
def django_on_a_temporary_database(*, postgres: bool, prefix: str) -> Iterator[str]:
    """Django set up and migrated on a database of its own, dropped afterwards; yields which database it is.

    A SQLite file in a temporary folder, or with `postgres` a fresh database on
    the PostgreSQL at 127.0.0.1:5432 (never the tests' `test`).
    """
    from bench.export_all import setup_database  # here: export_all imports this module

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_name:
        database_url, drop = setup_database(postgres, Path(tmp_name))
        try:
            os.environ.update(
                {
                    "DEBUG": "1",
                    "DATABASE_URL": database_url,
                    "DJANGO_SETTINGS_MODULE": "webapp.settings",
                    "REDIS_PREFIX": f"mchat-bench-{secrets.token_hex(4)}",
                    "LOG_LEVEL": "WARNING",
                    "ALLOWED_HOSTS": "testserver",
                }
            )
            import django
            from django.core.management import call_command
            from django.db import connection

            django.setup()
            call_command("migrate", verbosity=0)
            if connection.vendor == "sqlite":
                yield f"SQLite {'.'.join(map(str, connection.Database.sqlite_version_info))}"
            else:
                yield f"PostgreSQL {connection.pg_version}"
        finally:
            drop()
