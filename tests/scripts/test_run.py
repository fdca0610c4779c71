"""`make run`'s script, really run: it brings up Redis, Daphne and a worker, and Ctrl-C stops them all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.stack import ROOT, free_port

pytestmark = pytest.mark.integration


def session_processes(session_id: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(session_id)], capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def wait_for_health(port: int, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                health = json.load(response)
            if health["model"]["state"] == "ready":
                return health
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("make run did not come up")


def test_run_starts_a_private_redis_daphne_and_a_worker_and_ctrl_c_stops_them(tmp_path: Path) -> None:
    port, redis_port = free_port(), free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        # Nothing answers on this port: the script must start its own redis-server.
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MAX_BATCH": "2",
    }
    log = open(tmp_path / "run.log", "w+")  # noqa: SIM115 - read back below
    # A session of its own, like a terminal: Ctrl-C signals the whole process group.
    run = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        health = wait_for_health(port)
        assert health["redis"] == "ok" and health["database"] == "ok"
        assert health["model"]["model"] == "tiny-random-mistral"
        started = session_processes(run.pid)
        assert any("redis-server" in p for p in started)
        assert any("daphne" in p for p in started)
        assert any("celery" in p for p in started)
        output = Path(log.name).read_text()
        assert f"http://127.0.0.1:{port}/" in output
        assert "First administrator created: username 'admin', password '" in output

        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(timeout=60) is not None
        deadline = time.monotonic() + 15
        while session_processes(run.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session_processes(run.pid) == []
    finally:
        if run.poll() is None or session_processes(run.pid):
            os.killpg(run.pid, signal.SIGKILL)
        log.close()


def test_run_says_how_to_get_redis_when_there_is_none(tmp_path: Path) -> None:
    # A PATH with bash and the venv but no redis-server on it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "mkdir", "seq", "sleep"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run(
        [str(bin_dir / "bash"), "scripts/run.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert (
        "redis-server is not installed" in result.stderr and "apt-get install redis-server" in result.stderr
    )
