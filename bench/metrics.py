"""What the metrics cost each process: one call of each helper in webapp/metrics, per call, in µs.

Measured twice, each in a fresh interpreter: values in process memory (no
PROMETHEUS_MULTIPROC_DIR) and in multiprocess mode (values in mmap'd files,
what `make run` uses), and the scrape: `/metrics`'s registry collected and
rendered with the files of `--processes` processes in the folder.

    .venv/bin/python bench/metrics.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import cpu_model, format_table  # noqa: E402

CALLS = {
    "http_request": "metrics.http_request(method='GET', route='c/<str:conversation_id>/', status=200, seconds=0.01)",
    "socket_event": "with metrics.socket_event('send'): pass",
    "reply_finished": "metrics.reply_finished(status='complete', stats=STATS)",
    "socket_connected + closed": "metrics.socket_connected('open'); metrics.socket_closed()",
}
# One process's share of the work, timed in a child so that the mode is chosen before the import.
CHILD = """
import json, os, sys, timeit
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ.setdefault("DEBUG", "1")
from webapp import metrics
STATS = {"prompt_tokens": 100, "completion_tokens": 200, "ttft_ms": 120.0, "tokens_per_s": 40.0}
calls, number = json.loads(sys.argv[1]), int(sys.argv[2])
print(json.dumps({name: min(timeit.repeat(code, number=number, repeat=5, globals=globals())) / number * 1e6
                  for name, code in calls.items()}))
"""
SCRAPE = """
import os, sys, timeit
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ.setdefault("DEBUG", "1")
import django; django.setup()
from prometheus_client import generate_latest
from webapp.metrics.views import process_registry
print(min(timeit.repeat(lambda: generate_latest(process_registry()), number=20, repeat=3)) / 20 * 1e3)
"""


def run(code: str, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing")
    parser.add_argument("--processes", type=int, default=8, help="processes whose files the scrape adds up")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    in_memory = json.loads(run(CHILD, env, json.dumps(CALLS), str(args.number)))
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as folder:
        files = {**env, "PROMETHEUS_MULTIPROC_DIR": folder}
        in_files = json.loads(run(CHILD, files, json.dumps(CALLS), str(args.number)))
        for _ in range(args.processes - 1):  # the other processes' files, as a scrape finds them
            run(CHILD, files, json.dumps(CALLS), "10")
        scrape_ms = float(run(SCRAPE, files))

    print(f"{len(os.sched_getaffinity(0))} cores ({cpu_model()}); load average before the run: {load}\n")
    rows = [[name, f"{in_memory[name]:.1f}", f"{in_files[name]:.1f}"] for name in CALLS]
    print(format_table(["call", "µs, in memory", "µs, multiprocess files"], rows, markdown=args.markdown))
    print(f"\nA scrape of /metrics's registry with {args.processes} processes' files: {scrape_ms:.1f} ms")


if __name__ == "__main__":
    main()
