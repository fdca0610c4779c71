"""`make run`'s script, really run: it brings up Redis, Daphne and a worker under supervisord,
restarts whichever dies, serves the operator commands of a second terminal, and Ctrl-C stops it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import websockets

from tests.integration.test_reply_stream import collect_reply, next_event
from tests.support.stack import ROOT, Client, free_port

pytestmark = pytest.mark.integration

# What a developer's shell would not have set: `make run` must work without any of it.
UNSET = ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "HOST")
LONG = " ".join(f"word{i}" for i in range(300))
SHORT = "A short answer."


def session_processes(session_id: int) -> list[str]:
    out = subprocess.run(
        ["ps", "-ww", "-o", "pid=,args=", "-s", str(session_id)], capture_output=True, text=True
    )
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def terminal_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A shell in this checkout: no secret, no DEBUG; the test's own database and key file."""
    env = {name: value for name, value in os.environ.items() if name not in UNSET}
    return {
        **env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        # Not the checkout's .secret_key: a developer's own stays untouched.
        "SECRET_KEY_FILE": str(tmp_path / "secret_key"),
        **extra,
    }


class MakeRun:
    """scripts/run.sh in a session of its own, like a terminal (Ctrl-C signals the whole group)."""

    def __init__(self, tmp_path: Path, port: int | None = None, **extra: str) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "run.log"
        self.env = terminal_env(
            tmp_path,
            PORT=str(self.port),
            # Nothing answers on this port: the script must start its own redis-server.
            REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
            REDIS_PREFIX=f"mchat-run-{self.port}",
            MAX_BATCH="2",
            PYTHONUNBUFFERED="1",
            **extra,
        )
        # Append mode: supervisord reopens /dev/stdout for its programs' output.
        self.log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=5) as response:
                return json.load(response)
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"make run stopped:\n{self.output()[-5000:]}"
            health = self.health()
            if health and health["redis"] == "ok" and health["model"]["state"] == "ready":
                return health
            time.sleep(0.5)
        raise TimeoutError(f"make run did not come up:\n{self.output()[-5000:]}")

    def pid_of(self, program: str) -> int:
        """The pid of one program supervisord runs (by its command line)."""
        for line in session_processes(self.process.pid):
            pid, args = line.split(maxsplit=1)
            if program in args and "supervisord" not in args:
                return int(pid)
        raise LookupError(f"no {program} in {session_processes(self.process.pid)}")

    def kill(self, program: str) -> int:
        """SIGKILL one program, as the OOM killer or a CUDA fault would: no handler runs."""
        pid = self.pid_of(program)
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, program: str, old_pid: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid = self.pid_of(program)
                if pid != old_pid:
                    return pid
            except LookupError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{program} was not restarted:\n{self.output()[-5000:]}")

    def ctrl_c(self, sig: signal.Signals = signal.SIGINT) -> None:
        """Ctrl-C at the terminal (SIGINT to its foreground process group); SIGHUP: the terminal closed."""
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=90)
        deadline = time.monotonic() + 30
        while session_processes(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self) -> None:
        """After a failure: SIGKILL whatever is left (supervisord's programs have process groups of their own)."""
        for line in session_processes(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`.venv/bin/python manage.py ...` typed in a second terminal at the top of the checkout."""
    return subprocess.run(
        [".venv/bin/python", "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    )


def createsuperuser_interactively(env: dict[str, str], username: str, password: str) -> str:
    """`manage.py createsuperuser` as typed at a terminal (it asks only when stdin is a tty)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [".venv/bin/python", "manage.py", "createsuperuser"],
        cwd=ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    answers = {"Username": username, "Email address": "", "Password": password, "Password (again)": password}
    transcript = ""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                chunk = os.read(controller, 4096).decode(errors="replace")
            except OSError:  # the command ended and closed the terminal
                break
            if not chunk:
                break
            transcript += chunk
            prompt = transcript.rsplit("\n", 1)[-1]
            for question in sorted(answers, key=len, reverse=True):
                if re.match(rf"{re.escape(question)}( \(leave blank to use '[^']*'\))?: $", prompt):
                    os.write(controller, (answers[question] + "\n").encode())
                    transcript += "\n"
                    break
        assert process.wait(timeout=60) == 0, transcript
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return transcript


def test_run_starts_a_private_redis_daphne_and_a_worker_and_ctrl_c_stops_them(tmp_path: Path) -> None:
    # As the README says for a LAN: every interface, and the names people will type.
    run = MakeRun(tmp_path, DEFAULT_MAX_TOKENS="8", HOST="0.0.0.0", ALLOWED_HOSTS="127.0.0.1,chat.lan")
    try:
        health = run.wait_ready()
        assert health["database"] == "ok" and health["model"]["model"] == "tiny-random-mistral"
        started = session_processes(run.process.pid)
        for program in (
            "supervisord",
            "redis-server",
            "daphne_server -b 0.0.0.0",
            "-Q inference",
            "-Q maintenance",
        ):
            assert any(program in p for p in started), started
        output = run.output()
        assert "beat: Starting..." in output  # the retention schedule (the maintenance program)
        assert f"starting on 0.0.0.0:{run.port} for http://{{127.0.0.1,chat.lan}}:{run.port}/" in output
        for host, status in (("chat.lan", 200), ("intruder.example", 400)):
            request = urllib.request.Request(f"{run.base_url}/accounts/login/", headers={"Host": host})
            try:
                assert urllib.request.urlopen(request, timeout=10).status == status
            except urllib.error.HTTPError as error:
                assert error.code == status, host
        assert "First administrator created: username 'admin', password '" in output

        # The key was made on first start, for the owner's eyes only.
        key_file = Path(run.env["SECRET_KEY_FILE"])
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) >= 50
        # DEBUG is off: a missing page is the plain 404, not the debug page listing the URLconf.
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{run.base_url}/no-such-page/", timeout=10)
        assert missing.value.code == 404 and b"URLconf" not in missing.value.read()
        # Static files are still served (WhiteNoise), over plain HTTP, with no redirect to HTTPS.
        with urllib.request.urlopen(f"{run.base_url}/static/css/app.css", timeout=10) as response:
            assert response.status == 200 and response.url.startswith("http://")

        # Sign-up logs in over plain HTTP (the session cookie is not `Secure` here), and a reply streams.
        client = Client(SimpleNamespace(base_url=run.base_url, port=run.port)).signup()
        status, page = client.get("/c/")
        assert status == 200 and "New chat" in page

        async def one_reply() -> dict:
            async with client.connect(client.new_conversation()) as ws:
                await ws.send(json.dumps({"type": "send", "content": "Hello"}))
                return (await collect_reply(ws))[1]

        assert asyncio.run(one_reply())["status"] == "complete"
        # Daphne's /metrics adds up the worker's series too (PROMETHEUS_MULTIPROC_DIR, set by the script).
        with urllib.request.urlopen(f"{run.base_url}/metrics", timeout=10) as response:
            assert 'mchat_replies_total{status="complete"} 1.0' in response.read().decode()

        # A second terminal in the same checkout: the commands as docs/ write them, nothing set.
        terminal = terminal_env(tmp_path)
        transcript = createsuperuser_interactively(terminal, "alice", "a-long-Passw0rd!")
        assert "Superuser created successfully." in transcript

        made = manage(terminal, "create_api_key", "alice", "--name", "ci")  # docs/api.md
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip().splitlines()[-1]
        request = urllib.request.Request(
            f"{run.base_url}/v1/models", headers={"Authorization": f"Bearer {key}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200  # the running app knows the key the command made

        rules = tmp_path / "rules.json"
        rules.write_text(
            json.dumps([{"category": "financial", "action": "flag", "kind": "phrase", "pattern": "buy now"}])
        )
        imported = manage(terminal, "import_rules", str(rules))  # docs/moderation.md
        assert imported.returncode == 0, imported.stderr

        # Same key: the command reads the session the app signed when the person signed up.
        decoded = manage(
            terminal,
            "shell",
            "-c",
            "from django.contrib.sessions.models import Session; "
            "print(sorted('_auth_user_id' in s.get_decoded() for s in Session.objects.all()))",
        )
        assert decoded.returncode == 0 and decoded.stdout.strip().endswith("[True]"), decoded

        run.ctrl_c()
        assert session_processes(run.process.pid) == []
    finally:
        run.stop()


async def test_run_restarts_a_killed_worker_daphne_and_redis_and_the_page_is_served(tmp_path: Path) -> None:
    run = MakeRun(
        tmp_path,
        INFERENCE_ENGINE="tests.support.scripted_engine.load_engine",
        SCRIPTED_REPLIES=json.dumps({"short please": SHORT, "long please": LONG}),
        SCRIPTED_DELAY_S="0.05",
        DEFAULT_MAX_TOKENS="2000",
        # A heartbeat lives three of these: the orphaned reply is failed within seconds.
        WORKER_HEARTBEAT_S="1",
    )
    try:
        run.wait_ready()
        client = Client(SimpleNamespace(base_url=run.base_url, port=run.port)).signup()
        conversation = client.new_conversation()
        async with client.connect(conversation) as ws:
            await ws.send(json.dumps({"type": "send", "content": "long please"}))
            start = await next_event(ws, "start")
            await next_event(ws, "token")

            killed = run.kill("-Q inference")
            # The reply in flight ends `failed` on the same socket: Daphne kept serving.
            _, done = await collect_reply(ws)
            assert done["message_id"] == start["message_id"] and done["status"] == "failed"
            run.wait_restarted("-Q inference", killed)
            assert "exited: worker (terminated by SIGKILL; not expected)" in run.output()
            run.wait_ready()

            # The next message is served by the restarted worker, with nobody at the terminal.
            await ws.send(json.dumps({"type": "send", "content": "short please"}))
            _, nxt = await collect_reply(ws)
            assert nxt["status"] == "complete" and nxt["content"] == SHORT

        killed = run.kill("daphne")
        run.wait_restarted("daphne", killed)
        run.wait_ready()
        assert "exited: daphne (terminated by SIGKILL; not expected)" in run.output()
        async with client.connect(conversation) as ws:  # the page reconnects, as its script does
            await ws.send(json.dumps({"type": "send", "content": "short please"}))
            _, nxt = await collect_reply(ws)
            assert nxt["status"] == "complete" and nxt["content"] == SHORT

        killed = run.kill("redis-server")
        run.wait_restarted("redis-server", killed)
        assert "exited: redis (terminated by SIGKILL; not expected)" in run.output()
        run.wait_ready()
        # The first socket may meet Daphne's stale Redis connection (closed 1011, or an `error`);
        # the page reconnects with backoff, and so does this.
        deadline = time.monotonic() + 60
        while True:
            try:
                async with client.connect(conversation) as ws:
                    await ws.send(json.dumps({"type": "send", "content": "short please"}))
                    event = await next_event(ws)
                    if event["type"] != "error":
                        _, nxt = await collect_reply(ws)
                        break
            except websockets.ConnectionClosedError as closed:
                event = closed
            assert time.monotonic() < deadline, f"no message was served after Redis restarted: {event}"
            await asyncio.sleep(1)
        assert nxt["status"] == "complete" and nxt["content"] == SHORT

        run.ctrl_c(signal.SIGHUP)  # the terminal closed: everything stops, nothing reloads
        assert session_processes(run.process.pid) == []
    finally:
        run.stop()


def test_run_gives_up_and_stops_everything_when_daphne_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = MakeRun(tmp_path, port=taken.getsockname()[1])
        try:
            # Daphne cannot listen: tried four times (1 s, 2 s, 3 s apart), then everything stops.
            assert run.process.wait(timeout=300) == 1
            output = run.output()
            assert output.count("Address already in use") >= 4
            assert "gave up: daphne entered FATAL state" in output
            assert "make run: 'daphne' keeps exiting as soon as it starts" in output
            deadline = time.monotonic() + 30
            while session_processes(run.process.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert session_processes(run.process.pid) == []
        finally:
            run.stop()


def test_run_on_a_lan_address_asks_for_allowed_hosts(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env=terminal_env(tmp_path, HOST="0.0.0.0", PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "set ALLOWED_HOSTS" in result.stderr and "ALLOWED_HOSTS=192.168.1.20" in result.stderr
    assert not Path(tmp_path / "secret_key").exists()  # nothing is made before the checks pass


def test_run_says_how_to_get_redis_when_there_is_none(tmp_path: Path) -> None:
    # A PATH with bash and the venv but no redis-server on it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "mkdir", "seq", "sleep"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    env = terminal_env(tmp_path, PATH=str(bin_dir), REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
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
