"""The whole application, really started: a Celery inference worker and Daphne on the real Redis.

Used by the integration and browser tests. Each stack gets its own database
(a fresh PostgreSQL database when the server answers, else a SQLite file;
`database="sqlite"` asks for the file whatever answers) and its own Redis key
prefix, and stops every process it started.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import websockets

from tests.support.processes import alive, process_tree

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _create_database(name: str, tmp: Path, database: str) -> tuple[str, object]:
    """A database URL for the stack and a function that drops it afterwards."""
    sqlite = f"sqlite:///{tmp / 'stack.sqlite3'}", lambda: None
    if database == "sqlite":
        return sqlite
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        return sqlite

    def drop() -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


def _kill_all(pids: list[int], timeout: float = 15) -> None:
    """SIGKILL `pids` and wait until they are gone: a signal is sent at once, but ends a process later."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it ended with its parent
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass
class Stack:
    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    # The tree the processes run from (a benchmark runs another revision's checkout); same venv.
    root: Path = ROOT
    # "auto": PostgreSQL when it answers, else SQLite; "sqlite": the default database, always.
    database: str = "auto"
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, *, model_state: str = "ready") -> Stack:
        suffix = secrets.token_hex(4)
        self.database_url, self._drop_database = _create_database(
            f"mchat_it_{suffix}", self.tmp, self.database
        )
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DEBUG": "1",
            "DATABASE_URL": self.database_url,
            "REDIS_PREFIX": f"mchat-it-{suffix}",
            "MAX_BATCH": "4",
            # Short default replies keep the page tests quick; tests that need long ones ask.
            "DEFAULT_MAX_TOKENS": "96",
            "PYTHONUNBUFFERED": "1",
            # A real Daphne uses the sockets' thread pool (conftest.py turns it off in-process).
            "SOCKET_THREADS": "8",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(self.root), os.environ.get("PYTHONPATH")])),
            **self.extra_env,
        }
        self.manage("migrate", "--noinput")
        self.start_worker()
        self.start_daphne()
        self.wait_ready(model_state)
        return self

    def start_worker(self) -> subprocess.Popen:
        """One more Celery inference worker (the fault tests kill one and start another)."""
        self.worker = self._spawn(
            "worker",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "webapp",
                "worker",
                "-Q",
                "inference",
                "-P",
                "threads",
                "-c",
                self.env["MAX_BATCH"],
                "-I",
                "inference.tasks",
                "-n",
                f"it-{secrets.token_hex(4)}@%h",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
        )
        return self.worker

    def start_maintenance(self, **env: str) -> subprocess.Popen:
        """The maintenance worker with Celery beat, as scripts/supervisord.conf starts it (retention);
        `env` adds settings for it alone (a short RETENTION_INTERVAL_S)."""
        return self._spawn(
            "maintenance",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "webapp",
                "worker",
                "-B",
                "-s",
                str(self.tmp / "celerybeat-schedule"),
                "-Q",
                "maintenance",
                "-P",
                "solo",
                "-I",
                "webapp.chat.tasks",
                "-n",
                f"maintenance-{secrets.token_hex(4)}@%h",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
            env,
        )

    def start_daphne(
        self, port: int | None = None, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """Daphne on this stack's port (again, after a test killed it), or one more on another port.

        `extra_env`: settings of this Daphne only (one with another SIGNUP_MODE, say).
        """
        # Daphne as `make run` starts it: with the frame limit answered (webapp/daphne_server.py);
        # a tree from before that module (a benchmark's baseline) starts Daphne's own.
        own = (self.root / "webapp" / "daphne_server.py").exists()
        self.daphne = self._spawn(
            "daphne",
            [
                *([sys.executable, "-m", "webapp.daphne_server"] if own else [str(VENV_BIN / "daphne")]),
                "-b",
                "127.0.0.1",
                "-p",
                str(port or self.port),
                "webapp.asgi:application",
            ],
            extra_env=extra_env,
        )
        return self.daphne

    @contextmanager
    def another_daphne(self, extra_env: dict[str, str], *, port: int | None = None) -> Iterator[str]:
        """One more Daphne on this stack (same database, Redis and worker) with settings of its own; yields its URL."""
        port, serving = port or free_port(), self.daphne
        daphne = self.start_daphne(port, extra_env=extra_env)
        self.daphne = serving  # the stack's own Daphne stays the one other tests restart
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/accounts/login/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        try:
            yield url
        finally:
            self.kill(daphne)

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL one of this stack's processes, and any it started: no shutdown handler runs, as in a crash.

        The children too: the maintenance worker's `-B` forks Celery beat,
        which would outlive its worker, adopted by init, sending its schedule.
        """
        children = process_tree(process.pid)[1:]
        process.kill()
        process.wait(timeout=15)
        _kill_all(children)
        self.processes.remove(process)

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.tmp / f"{name}-{len(self.processes)}.log", "wb")  # noqa: SIM115 - closed with the process
        env = {**self.env, **(extra_env or {})}
        process = subprocess.Popen(argv, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def import_rules(self, rules: list[dict[str, str]]) -> str:
        """Load moderation rules as staff do, with `manage.py import_rules` (running workers see them)."""
        path = self.tmp / f"rules-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(rules))
        return self.manage("import_rules", str(path))

    def wait_ready(self, model_state: str = "ready", timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a process exited early:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as response:
                    last = json.load(response)
                if last["model"]["state"] == model_state:
                    return last
            except OSError as error:
                last = error
            time.sleep(0.3)
        raise TimeoutError(f"the stack did not become ready: {last}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.tmp.glob("*.log")
        )

    def stop(self) -> None:
        children = [pid for process in self.processes for pid in process_tree(process.pid)[1:]]
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        _kill_all(children)  # what a process started and did not end with itself
        self._drop_database()

    def stored_messages(self, conversation_id: str) -> list[dict]:
        """The conversation's rows as the database holds them, read by a separate process."""
        code = (
            "import json; from webapp.chat.models import Message; "
            f"print(json.dumps(list(Message.objects.filter(conversation_id='{conversation_id}')"
            ".order_by('created_at').values('id', 'role', 'content', 'status', 'completion_tokens')), default=str))"
        )
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])


class Client:
    """A person's browser session, over plain HTTP: signs up, opens conversations."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name)

    def get(self, path: str) -> tuple[int, str]:
        with self.opener.open(self.stack.base_url + path, timeout=10) as response:
            return response.status, response.read().decode()

    def post(self, path: str, fields: dict[str, str]) -> str:
        """POST a form with the CSRF token; returns the final URL after redirects."""
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self.cookie("csrftoken")}).encode()
        request = urllib.request.Request(self.stack.base_url + path, data=data)
        with self.opener.open(request, timeout=10) as response:
            return response.url

    def signup(self, username: str | None = None, password: str = "a-long-Passw0rd!") -> Client:
        username = username or f"user{secrets.token_hex(4)}"
        self.get("/accounts/signup/")
        self.post("/accounts/signup/", {"username": username, "password1": password, "password2": password})
        assert any(c.name == "sessionid" for c in self.jar), "sign-up did not log in"
        return self

    def new_conversation(self) -> str:
        url = self.post("/c/new/", {})
        match = re.search(r"/c/([0-9a-f-]{36})/$", url)
        assert match, url
        return match.group(1)

    def socket_headers(self) -> dict[str, str]:
        return {"Cookie": f"sessionid={self.cookie('sessionid')}", "Origin": self.stack.base_url}

    def socket_url(self, conversation_id: str) -> str:
        return f"ws://127.0.0.1:{self.stack.port}/ws/conversations/{conversation_id}/"

    def connect(self, conversation_id: str) -> websockets.connect:
        """Open this person's websocket on a conversation (use with `async with`)."""
        return websockets.connect(self.socket_url(conversation_id), additional_headers=self.socket_headers())
