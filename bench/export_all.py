"""Memory of the export-all zip: does resident memory stay flat while thousands of conversations stream?

Builds `--conversations` conversations of `--messages` messages (about
`--chars` characters each) for one user in a temporary database (a SQLite
file, or with `--postgres` a fresh database on the PostgreSQL at
127.0.0.1:5432, dropped afterwards), then measures resident memory (VmRSS,
sampled every 20 ms) while the whole zip is produced:

- through a real Daphne (`webapp.asgi`): the download of `/c/export/?format=json`
  by a client reading as fast as it can; growth = the Daphne process's peak
  during the download minus its resident memory just before it;
- in this process: the generator `exports.export_zip` iterated and thrown away;
- with `--slow-client MB_S`, the same download read at that rate: Daphne applies
  no backpressure, so what the client has not read yet waits in its memory;
- for contrast, in this process: the same zip joined into one bytes object,
  which is what Django's ASGI handler does to a plain (synchronous) iterator.

Target: growth under 100 MB for 5,000 conversations x 40 messages.

    .venv/bin/python bench/export_all.py
    .venv/bin/python bench/export_all.py --postgres --markdown
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import cpu_model, fmt, format_table  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SYLLABLES = [c + v for c in "bcdfghklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ou", "ea")]
# Pseudo-words from a vocabulary about as large as a real reply's: the zip compresses
# them about as much as prose (to roughly a third), not to nothing.
WORDS = ["".join(random.Random(n).choices(SYLLABLES, k=1 + n % 4)) for n in range(5000)]


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class PeakSampler:
    """Samples a process's resident memory in a thread; `peak` is the largest seen."""

    def __init__(self, pid: int | str = "self", every_s: float = 0.02) -> None:
        self.pid, self.every_s = pid, every_s
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(self.every_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


def setup_database(postgres: bool, tmp: Path) -> tuple[str, Callable[[], None]]:
    if not postgres:
        return f"sqlite:///{tmp / 'export-bench.sqlite3'}", lambda: None
    import psycopg

    name = f"mchat_export_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


def build(conversations: int, messages: int, chars: int) -> tuple[object, int]:
    """The user and their conversations; returns (user, total characters of content)."""
    from django.contrib.auth import get_user_model

    from webapp.chat.models import Conversation, Message

    rng = random.Random(7)
    user = get_user_model().objects.create_user(username="bench")
    total = 0
    for start in range(0, conversations, 500):
        batch = Conversation.objects.bulk_create(
            Conversation(owner=user, title=f"Conversation {n}: {' '.join(rng.sample(WORDS, 4))}")
            for n in range(start, min(start + 500, conversations))
        )
        rows = []
        for conversation in batch:
            previous = None  # one path: each message under the one before (webapp/chat/tree.py)
            for number in range(messages):
                content = " ".join(rng.choices(WORDS, k=max(1, int(rng.uniform(0.5, 1.5) * chars / 6))))
                total += len(content)
                reply = number % 2 == 1
                previous = Message(
                    id=uuid.uuid4(),
                    conversation=conversation,
                    parent=previous,
                    role="assistant" if reply else "user",
                    content=content,
                    params={"temperature": 0.7, "max_tokens": 512} if reply else {},
                    completion_tokens=len(content) // 4 if reply else None,
                    model_name="tiny-random-mistral" if reply else "",
                )
                rows.append(previous)
            conversation.current_leaf = previous
        Message.objects.bulk_create(rows, batch_size=2000)
        Conversation.objects.bulk_update(batch, ["current_leaf"], batch_size=500)
    return user, total


def session_cookie(user: object) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"sessionid={session.session_key}"


def through_daphne(
    env: dict[str, str], cookie: str, tmp: Path, expected_entries: int, *, client_mb_s: float | None = None
) -> dict[str, float]:
    port = int(env["BENCH_PORT"])
    log = open(tmp / "daphne.log", "wb")  # noqa: SIM115 - closed below
    daphne = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "webapp.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                warm = urllib.request.Request(
                    f"{base}/c/export/started/?format=json", headers={"Cookie": cookie}
                )
                with urllib.request.urlopen(warm, timeout=30) as response:
                    assert b"has started" in response.read()
                break
            except OSError:
                if daphne.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "daphne.log").read_text(errors="replace")) from None
                time.sleep(0.3)
        time.sleep(0.5)
        before = rss_bytes(daphne.pid)
        target = tmp / "export.zip"
        began = time.perf_counter()
        request = urllib.request.Request(f"{base}/c/export/?format=json", headers={"Cookie": cookie})
        with (
            PeakSampler(daphne.pid) as sampler,
            urllib.request.urlopen(request, timeout=60) as response,
            open(target, "wb") as out,
        ):
            received = 0
            while piece := response.read(1 << 20):
                out.write(piece)
                received += len(piece)
                if client_mb_s:  # a slow client: Daphne has no backpressure and buffers the rest
                    time.sleep(max(0.0, received / (client_mb_s * 1e6) - (time.perf_counter() - began)))
        elapsed = time.perf_counter() - began
        with zipfile.ZipFile(target) as archive:
            entries = len(archive.namelist())
        assert entries == expected_entries, f"{entries} entries, expected {expected_entries}"
        return {
            "before": before,
            "peak": sampler.peak,
            "seconds": elapsed,
            "zip_bytes": target.stat().st_size,
        }
    except Exception:
        print((tmp / "daphne.log").read_text(errors="replace")[-5000:], file=sys.stderr)
        raise
    finally:
        daphne.terminate()
        daphne.wait(timeout=15)
        log.close()


def in_process(user: object, *, keep: bool) -> dict[str, float]:
    from django.utils import timezone

    from webapp.chat.exports import export_zip
    from webapp.chat.selectors import conversations_for_user

    before = rss_bytes()
    began = time.perf_counter()
    size = 0
    with PeakSampler() as sampler:
        pieces = export_zip(conversations_for_user(user), "json", exported_at=timezone.now())
        if keep:
            whole = b"".join(pieces)
            size = len(whole)
            sampler.peak = max(sampler.peak, rss_bytes())
            del whole
        else:
            for piece in pieces:
                size += len(piece)
    return {"before": before, "peak": sampler.peak, "seconds": time.perf_counter() - began, "zip_bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=5000)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--chars", type=int, default=400, help="average characters per message")
    parser.add_argument("--postgres", action="store_true", help="a temporary PostgreSQL database, not SQLite")
    parser.add_argument("--slow-client", type=float, metavar="MB_S", help="also download at this rate")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp_name:
        tmp = Path(tmp_name)
        database_url, drop = setup_database(args.postgres, tmp)
        try:
            os.environ.update(
                {
                    "DEBUG": "1",
                    "DATABASE_URL": database_url,
                    "DJANGO_SETTINGS_MODULE": "webapp.settings",
                    "REDIS_PREFIX": f"mchat-bench-{secrets.token_hex(4)}",
                    "LOG_LEVEL": "WARNING",
                }
            )
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0)
            began = time.perf_counter()
            user, characters = build(args.conversations, args.messages, args.chars)
            built_s = time.perf_counter() - began
            cookie = session_cookie(user)
            from tests.support.stack import free_port

            env = {**os.environ, "BENCH_PORT": str(free_port())}
            results = {
                "Daphne, /c/export/?format=json": through_daphne(env, cookie, tmp, args.conversations + 1),
            }
            if args.slow_client:
                results[f"Daphne, a client reading {args.slow_client:g} MB/s"] = through_daphne(
                    env, cookie, tmp, args.conversations + 1, client_mb_s=args.slow_client
                )
            results |= {
                "in process, export_zip iterated": in_process(user, keep=False),
                "in process, joined (a sync iterator under ASGI)": in_process(user, keep=True),
            }
        finally:
            drop()

    database = "PostgreSQL 127.0.0.1" if args.postgres else "SQLite file"
    print(
        f"{args.conversations:,} conversations x {args.messages} messages, {characters / 1e6:,.0f} M characters "
        f"of content, {database}, built in {built_s:,.0f} s; "
        f"{len(os.sched_getaffinity(0))} cores ({cpu_model()}), Python {platform.python_version()}\n"
    )
    rows = [
        [
            what,
            fmt(r["before"] / 1e6),
            fmt(r["peak"] / 1e6),
            fmt((r["peak"] - r["before"]) / 1e6),
            fmt(r["zip_bytes"] / 1e6),
            fmt(r["seconds"]),
            fmt(args.conversations / r["seconds"], 0),
        ]
        for what, r in results.items()
    ]
    headers = ["what", "RSS before MB", "peak MB", "growth MB", "zip MB", "seconds", "conversations/s"]
    print(format_table(headers, rows, markdown=args.markdown))


if __name__ == "__main__":
    main()
