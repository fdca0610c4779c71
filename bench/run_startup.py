"""`make run` start-up: seconds from starting scripts/run.sh to `/healthz` saying the model is ready.

Each run starts the script of a checkout (`--checkout`, default this one) with a
fresh SQLite file (so the migrations run, as on a first start), a private
redis-server on a free port and no secret set, polls `/healthz` every 0.1 s,
then stops it with Ctrl-C. Give two checkouts to compare them, run by run in turn.

    .venv/bin/python bench/run_startup.py --runs 3 --checkout ../main --checkout .
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_description  # noqa: E402
from tests.support.stack import free_port  # noqa: E402


def ready_after(checkout: Path, timeout: float = 300.0) -> float:
    """One start of checkout's scripts/run.sh; the seconds until the model is ready."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
        env |= {
            "PORT": str(port),
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
            "SECRET_KEY_FILE": f"{tmp}/secret_key",
            "MAX_BATCH": "2",
        }
        with open(f"{tmp}/run.log", "a") as log:
            started = time.monotonic()
            run = subprocess.Popen(
                ["bash", "scripts/run.sh"],
                cwd=checkout,
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            try:
                while time.monotonic() - started < timeout:
                    try:
                        with urllib.request.urlopen(
                            f"http://127.0.0.1:{port}/healthz", timeout=2
                        ) as response:
                            if json.load(response)["model"]["state"] == "ready":
                                return time.monotonic() - started
                    except (OSError, ValueError):
                        pass
                    time.sleep(0.1)
                raise TimeoutError(f"{checkout} did not come up in {timeout:.0f} s")
            finally:
                os.killpg(run.pid, signal.SIGINT)
                run.wait(timeout=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--checkout", type=Path, action="append", help="repeat to compare (default: this one)"
    )
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkout or [Path(__file__).resolve().parents[1]]]
    print(machine_description())
    times: dict[Path, list[float]] = {c: [] for c in checkouts}
    for number in range(args.runs):
        for checkout in checkouts:
            times[checkout].append(ready_after(checkout))
            print(f"run {number + 1}: {checkout}: ready after {times[checkout][-1]:.1f} s", flush=True)
    print("\n| checkout | runs (s) | median (s) |\n| --- | --- | --- |")
    for checkout, seconds in times.items():
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"| {checkout} | {runs} | {statistics.median(seconds):.1f} |")


if __name__ == "__main__":
    main()
