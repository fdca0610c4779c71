"""The whole stack's streaming throughput: N chats at once, scripted engine, before and after.

Starts Daphne and a Celery inference worker on the real Redis and PostgreSQL
(tests/support/stack.py) with the scripted engine, which steps every
`SCRIPTED_DELAY_S` and gives each live reply its next token, so it demands
N / step tokens/s. N people, each with a websocket on a conversation of
their own, send at the same moment; every reply is the same scripted text
of `--reply-tokens` or more tokens. Measured at the clients:

- delivered tokens/s: the completion tokens of every `done`, over the wall
  time from the first send to the last `done`, against the engine's rate
  (so it counts the wait for the first token too); `all live %`, the same
  while every chat still had a reply to come (from the first send to the
  first chat's last `done`: with replies of different lengths, the run's
  end has only the longest chats left); and `stream %`, each
  reply's own rate from its first `token` to its `done` against one token a
  step (the path keeping up once a reply streams);
- TTFT p50/p99: send -> first `token` event, minus the engine's own (one step);
- CPU seconds per 1,000 delivered tokens of the worker, of Daphne (process
  trees, /proc/<pid>/stat utime+stime, read just before the sends and just
  after the last `done`) and of this client;
- lost replies (no `done`, not `complete`, fewer tokens than scripted) and
  duplicated or corrupt ones (a second `done`, a `token` after it, a `seq`
  that does not rise by one, streamed text other than the `done` content, a
  stored reply too many or unlike the streamed one).

`--baseline REV` checks REV out into a temporary git worktree and starts a
second stack from it (same venv, and this tree's scripted engine, so that
both face the same engine); the points run alternately on both trees, and
the table shows both rows per point. Points are `N` or `N@MS` (step ms).

    .venv/bin/python bench/stack.py                                   # 1,16,64,128@5 on this tree
    .venv/bin/python bench/stack.py --baseline e859c23 --points 1,16,64 --markdown
    .venv/bin/python bench/stack.py --points 64 --profile /tmp/stack-prof  # py-spy, see below

`--row-ms` sets `SCRIPTED_ROW_S`, an engine cost per live row per step
(a step then takes step + N x row). `--spread-ms S` spreads the N sends
evenly over S ms instead of sending them in the same millisecond (people
do not all press Enter at once); the wall time then starts at the first
send, so read TTFT from those rows, not the rate. `--daphnes 1,2` starts
two Daphnes per stack, each on a port of its own, and runs each point with
the sockets on the first one, then spread over both in turn (more Daphne
processes: the documented way to add fan-out capacity); Daphne's CPU is
then both processes'. `--rounds K` has each chat send K messages, each as
soon as the reply before it is done (after `--think-ms`): the first round is
the burst, and the later rounds' sends arrive as replies end, a busy
server's steady state; their TTFT gets columns of its own (`later TTFT`;
`TTFT` is then the first round's),
and the stored check wants every round's reply, in order. `--reply-tokens
A-B` gives each message a length of its own between A and B tokens (its
`max_tokens`, drawn anew each round; the script is B tokens long): with
every reply the same length, a burst's replies also end together and the
next round's sends come as a burst again; replies of different lengths
spread the later rounds' sends out, as a server's chats do. The stacks run as `make run` does: DEBUG off (a throwaway key),
plain HTTP. `--profile DIR` runs `py-spy record
--format raw --gil --nonblocking` on the worker and on Daphne during the
largest point, from the first send to the last `done` (collapsed stacks of
the thread holding the GIL: open them in speedscope.app or flamegraph.pl)
and prints the worker's and Daphne's top frames; the row is marked, as
sampling costs some CPU. py-spy is not a project requirement:
`.venv/bin/python -m pip install py-spy`. `--warm N` sends an untimed burst
of N chats on each tree before its first point (and after each change of
step): a server that has been running a while, its pooled database
connections open, its job threads started and its statements prepared
(a fresh stack's first 64-chat burst took 1.5-2x the time of the next).
`--trace DIR` writes, per point and tree, each reply's moments (sent,
`start`, first token, `done`) and every 50 ms the cores each process used
(worker, Daphne, PostgreSQL, Redis, the clients; bench/burst_trace.py): which
stage a burst waits for. The sampler's own reads count in the client CPU.

The people are made in one `manage.py shell` with a fast password hasher
(the sign-up page hashes for ~1 s a person on a busy 2-core machine); each
stack's start and the stored-reply check per point are a process each, so a
run of 1,16,64 on two trees takes ~6 minutes on a loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from bench.burst_trace import CpuSampler, write_trace  # noqa: E402
from bench.common import fmt, format_table, machine_description, percentile, top_frames  # noqa: E402
from bench.stack_chats import Tree, all_live_rate, converse  # noqa: E402
from inference.chat_template import sentencepiece_processor  # noqa: E402
from tests.support.stack import VENV_BIN, Client, Stack, free_port  # noqa: E402

ENGINE_FILE = Path("tests/support/scripted_engine.py")
TRIGGER = "garden walk"
PROMPT = f"Tell me about your {TRIGGER}, please."
SENTENCES = (
    "The morning light settled over the garden while the kettle warmed on the stove.",
    "A narrow path of flat stones led past the beans, the tomatoes and a row of tall sunflowers.",
    "Somebody had left a wooden chair by the gate, facing the hills to the west.",
    "Bees moved slowly between the lavender bushes, and a blackbird sang from the old pear tree.",
    "By noon the shade had shifted to the far wall, where the mint grew thick and green.",
)
HEADERS = (
    "tree", "N", "Daphnes", "step ms", "demanded tok/s", "delivered tok/s", "delivered %", "all live %",
    "spread ms", "rounds", "stream % p50", "TTFT p50 - step ms", "TTFT p99 - step ms",
    "later TTFT p50 - step ms", "later TTFT p99 - step ms", "start p50 ms", "queue p50 ms", "worker TTFT p50 ms",
    "worker CPU s/1k tok", "Daphne CPU s/1k tok",
    "client CPU s/1k tok", "lost", "dup/corrupt", "wall s",
)  # fmt: skip


@dataclass(frozen=True)
class Point:
    chats: int
    step_s: float
    row_s: float = 0.0

    @property
    def engine_step_s(self) -> float:
        """One step of the scripted engine with every chat live: the step, plus the cost per row."""
        return self.step_s + self.chats * self.row_s


def parse_points(text: str, step_ms: float, row_ms: float) -> list[Point]:
    points = []
    for part in text.split(","):
        chats, _, ms = part.strip().partition("@")
        points.append(Point(int(chats), float(ms or step_ms) / 1000, row_ms / 1000))
    return points


def scripted_reply(min_tokens: int) -> tuple[str, int]:
    """A plain text of at least `min_tokens` SentencePiece tokens (the engine replays its ids)."""
    processor = sentencepiece_processor()
    sentences: list[str] = []
    while len(processor.encode(" ".join(sentences))) < min_tokens:
        sentences.append(SENTENCES[len(sentences) % len(SENTENCES)])
    text = " ".join(sentences)
    return text, len(processor.encode(text))


def parse_lengths(text: str) -> tuple[int, int]:
    """`--reply-tokens`: `N` (every reply N tokens or more) or `A-B` (each between A and B)."""
    ends = text.split("-")
    try:
        if len(ends) > 2:
            raise ValueError(text)
        lengths = int(ends[0]), int(ends[-1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: N or A-B, in tokens") from None
    if not 1 <= lengths[0] <= lengths[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: 1 <= A <= B")
    return lengths


def reply_lengths(shortest: int, longest: int) -> Callable[[int, int], int]:
    """Each message's `max_tokens`, by (chat, round): drawn uniformly from [shortest, longest], a new
    draw each round, the same on every tree and every run (so both trees face the same load)."""

    def length(chat: int, round_: int) -> int:
        return random.Random(f"{chat}:{round_}").randint(shortest, longest)

    return length


def stored_replies(stack: Stack, conversations: tuple[str, ...]) -> dict[str, list[str]]:
    """Each conversation's stored reply texts, read by one separate process."""
    code = (
        "import json; from webapp.chat.models import Message; rows = {}\n"
        f"for m in Message.objects.filter(conversation_id__in={conversations!r}, role='assistant')"
        ".order_by('created_at'):\n"
        "    rows.setdefault(str(m.conversation_id), []).append(m.content)\n"
        "print(json.dumps(rows))"
    )
    return json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1])


def start_profile(tree: Tree, chats: int, directory: Path) -> list[tuple[subprocess.Popen, Path]]:
    """`py-spy record` on the worker and on (the first) Daphne, until `stop_profile`."""
    spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/python -m pip install py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    profilers = []
    for role, process in (("worker", tree.stack.worker), ("daphne", tree.stack.daphne)):
        output = directory / f"{tree.label.replace(' ', '-')}-{role}-n{chats}.txt"
        argv = [spy, "record", "--pid", str(process.pid), "--format", "raw", "--nonblocking", "--gil"]
        argv += ["--subprocesses", "--output", str(output)]
        log = open(output.with_suffix(".log"), "wb")  # noqa: SIM115 - closed with the process
        profilers.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), output))
    time.sleep(1.0)  # py-spy attaches
    return profilers


def stop_profile(profilers: list[tuple[subprocess.Popen, Path]]) -> None:
    for profiler, _ in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler, output in profilers:
        try:
            profiler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            profiler.kill()
        if profiler.returncode or not output.exists():
            log = output.with_suffix(".log").read_text()[-600:]
            print(f"py-spy exited {profiler.returncode}: {log}", file=sys.stderr)
        else:
            print(f"\n{output}: top frames by own samples\n{top_frames(output)}")


def set_step(tree: Tree, step_s: float, max_tokens: int, warm: int) -> None:
    """Restart the worker if the step changes (the engine reads it at start), then warm up."""
    if tree.step_s != step_s:
        if tree.step_s:
            tree.stack.kill(tree.stack.worker)
            tree.stack.env["SCRIPTED_DELAY_S"] = str(step_s)
            tree.stack.start_worker()
        tree.step_s = step_s
        # Untimed: imports, first jobs, a live worker; a socket on each Daphne. Then, with
        # --warm N, a burst of N chats: a server that has been running a while (its pooled
        # connections open, its job threads started, its statements prepared).
        asyncio.run(converse(tree, len(tree.daphnes), max_tokens, PROMPT, daphnes=len(tree.daphnes)))
        if warm:
            asyncio.run(converse(tree, warm, max_tokens, PROMPT, daphnes=len(tree.daphnes)))


def measure(
    tree: Tree,
    point: Point,
    daphnes: int,
    tokens: int,
    spread_s: float,
    profile: Path | None,
    profiled: bool,
    warm: int = 0,
    trace: Path | None = None,
    rounds: int = 1,
    think_s: float = 0.0,
    lengths: Callable[[int, int], int] | None = None,
) -> list[str]:
    """One point on one tree: the table row. `lengths`: each message's `max_tokens`, by (chat, round)."""
    set_step(tree, point.step_s, tokens + 16, warm)
    profilers: list[tuple[subprocess.Popen, Path]] = []
    sampler = (
        CpuSampler.for_stack(tree.stack.worker.pid, [process.pid for _, process in tree.daphnes[:daphnes]])
        if trace
        else None
    )

    def on_send() -> None:
        if profile and profiled:
            profilers.extend(start_profile(tree, point.chats, profile))
        if sampler is not None:
            sampler.start()

    chats, conversations, cpu = asyncio.run(
        converse(
            tree,
            point.chats,
            lengths or tokens + 16,
            PROMPT,
            spread_s=spread_s,
            daphnes=daphnes,
            rounds=rounds,
            think_s=think_s,
            on_send=on_send,
        )
    )
    replies = [reply for chat_replies in chats for reply in chat_replies]
    if sampler is not None and trace is not None:
        sampler.stop()
        name = f"{tree.label.replace(' ', '-')}-n{point.chats}-{point.step_s * 1000:g}ms-d{daphnes}"
        number = len(list(trace.glob(f"{name}-*.json"))) + 1  # a point run again gets a file of its own
        write_trace(trace / f"{name}-{number}.json", replies, sampler)
    if profilers:
        stop_profile(profilers)
    stored = stored_replies(tree.stack, conversations)
    finished = [r for r in replies if r.done is not None]
    # The whole script, or as much of it as the message's limit let through.
    complete = [
        r for r in finished if r.status == "complete" and r.completion_tokens == min(tokens, r.max_tokens)
    ]
    # A chat is corrupt if any reply of it is, or what is stored is not what its replies streamed.
    corrupt = sum(
        any(r.bad_seq > 0 or r.strays > 0 or r.streamed != r.content for r in rs)
        or stored.get(c, []) != [r.content for r in rs if r.done is not None]
        for rs, c in zip(chats, conversations, strict=True)
    )
    delivered = sum(r.completion_tokens for r in finished)
    wall = max((r.done for r in finished), default=time.perf_counter()) - min(r.sent for r in replies)
    # The first round's sends come at once (or spread over `spread_s`): the burst. After it, they come
    # as replies end, not all at once: a busy server's steady state.
    ttft = [
        (r.first - r.sent - point.engine_step_s) * 1000
        for r in replies
        if r.first is not None and not r.round
    ]
    later = [
        (r.first - r.sent - point.engine_step_s) * 1000 for r in replies if r.first is not None and r.round
    ]
    demanded = point.chats / point.engine_step_s
    # Each reply's own rate once its first token is out, against the engine's one token a step.
    streaming = [
        100 * (r.completion_tokens - 1) / (r.done - r.first) * point.engine_step_s
        for r in finished
        if r.first is not None and r.done > r.first and r.completion_tokens > 1
    ]
    per_1k = 1000 / delivered if delivered else float("nan")
    all_live = all_live_rate(chats)
    return [
        tree.label + (" (profiled)" if profilers else ""),
        str(point.chats),
        str(daphnes),
        fmt(point.step_s * 1000, 0),
        fmt(demanded, 0),
        fmt(delivered / wall, 0),
        fmt(100 * delivered / wall / demanded, 0),
        "-" if all_live is None else fmt(100 * all_live / demanded, 0),
        fmt(spread_s * 1000, 0),
        str(rounds),
        fmt(percentile(streaming, 50), 0),
        fmt(percentile(ttft, 50), 0),
        fmt(percentile(ttft, 99), 0),
        fmt(percentile(later, 50), 0) if later else "-",
        fmt(percentile(later, 99), 0) if later else "-",
        fmt(percentile([(r.started - r.sent) * 1000 for r in replies if r.started is not None], 50), 0),
        fmt(percentile([r.queue_ms for r in finished if r.queue_ms is not None], 50), 0),
        fmt(percentile([r.worker_ttft_ms for r in finished if r.worker_ttft_ms is not None], 50), 0),
        fmt(cpu["worker"] * per_1k, 3),
        fmt(cpu["daphne"] * per_1k, 3),
        fmt(cpu["client"] * per_1k, 3),
        str(point.chats * rounds - len(complete)),
        str(corrupt),
        fmt(wall, 1),
    ]


def sign_up(stack: Stack, people: int) -> list[Client]:
    """`people` accounts, each logged in, as the sign-up page makes them, but in one process
    and with a fast hasher: 128 sign-ups through the page hash for minutes on a busy machine."""
    code = f"""import json
from importlib import import_module
from django.conf import settings
from django.contrib import auth
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
keys = []
for number in range({people}):
    user = auth.get_user_model().objects.create_user("bench{secrets.token_hex(4)}-%d" % number, password="bench")
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[auth.SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[auth.BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[auth.HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    keys.append(session.session_key)
print(json.dumps(keys))"""
    clients = []
    for key in json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1]):
        client = Client(stack)
        client.jar.set_cookie(http.cookiejar.Cookie(0, "sessionid", key, None, False, "127.0.0.1", False, False, "/", True, False, None, True, None, None, {}))  # fmt: skip
        client.get("/c/")  # the CSRF cookie, and proof the session works
        clients.append(client)
    return clients


def wait_listening(port: int, timeout_s: float = 60.0) -> None:
    """Until something accepts connections on `port` (a Daphne just started)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def open_trees(
    roots: dict[str, Path], env: dict[str, str], people: int, daphnes: int, exits: ExitStack
) -> list[Tree]:
    """Each tree's stack, started and its people signed up side by side (sign-up hashes: slow)."""
    trees = []
    for label, root in roots.items():
        tmp = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="bench-stack-")))
        trees.append(Tree(label, Stack(tmp=tmp, extra_env=env, root=root)))
        exits.callback(trees[-1].stack.stop)

    def start(tree: Tree) -> None:
        started = time.perf_counter()
        try:
            tree.stack.start()
            tree.daphnes = [(tree.stack.port, tree.stack.daphne)]
            for _ in range(daphnes - 1):
                port = free_port()
                tree.daphnes.append((port, tree.stack.start_daphne(port)))
                wait_listening(port)
        except BaseException:
            print(tree.stack.logs(), file=sys.stderr)
            raise
        tree.people = sign_up(tree.stack, people)
        elapsed = time.perf_counter() - started
        print(f"{tree.label}: {tree.stack.root}, up with {people} people in {elapsed:.0f} s", flush=True)

    with ThreadPoolExecutor() as pool:
        list(pool.map(start, trees))
    return trees


def current_label() -> str:
    """This tree's commit, with a + when it has changes not committed."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    changed = subprocess.run([*git, "status", "--porcelain", "-uno"], capture_output=True, text=True).stdout
    return f"current {head.strip()}{'+' if changed.strip() else ''}"


def baseline_checkout(revision: str, exits: ExitStack) -> Path:
    """REV in a temporary detached git worktree, removed at the end, with this tree's scripted
    engine: both trees then face the same stand-in for a GPU, and the rows compare the path after it."""
    path = Path(tempfile.mkdtemp(prefix="bench-stack-baseline-"))
    path.rmdir()
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), revision], check=True)
    exits.callback(subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)])
    shutil.copyfile(ROOT / ENGINE_FILE, path / ENGINE_FILE)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", default="1,16,64,128@5", help="N or N@step-ms, comma-separated")
    parser.add_argument("--step-ms", type=float, default=10.0, help="engine step where a point names none")
    parser.add_argument("--row-ms", type=float, default=0.0, help="SCRIPTED_ROW_S: engine cost per live row")
    parser.add_argument(
        "--reply-tokens",
        type=parse_lengths,
        default=(250, 250),
        metavar="N or A-B",
        help="each reply at least N tokens long, or each between A and B (see above)",
    )
    parser.add_argument("--spread-ms", type=float, default=0.0, help="spread the N sends over this many ms")
    parser.add_argument(
        "--rounds", type=int, default=1, help="messages per chat, each sent when the reply before is done"
    )
    parser.add_argument(
        "--think-ms", type=float, default=0.0, help="a chat's pause between a done and its next send"
    )
    parser.add_argument(
        "--daphnes", default="1", help="Daphne processes to spread the sockets over, e.g. 1,2"
    )
    parser.add_argument("--baseline", metavar="REV", help="also run git revision REV, side by side")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the largest point into DIR")
    parser.add_argument(
        "--warm", type=int, default=0, metavar="N", help="an untimed burst of N chats first (per engine step)"
    )
    parser.add_argument(
        "--trace",
        type=Path,
        metavar="DIR",
        help="each point's reply moments and CPU by process, as JSON (bench/burst_trace.py)",
    )
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)

    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    points = parse_points(args.points, args.step_ms, args.row_ms)
    daphne_counts = sorted({int(count) for count in args.daphnes.split(",")})
    most = max(p.chats for p in points)
    if args.warm > most:
        parser.error(f"--warm {args.warm}: at most the largest point ({most}), the people signed up")
    shortest, longest = args.reply_tokens
    reply, tokens = scripted_reply(longest)
    # Fixed: every reply the whole script, ended by the engine. A range: each message's own limit.
    lengths = None if shortest == longest else reply_lengths(shortest, longest)
    env = {
        "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
        "SCRIPTED_REPLIES": json.dumps({TRIGGER: reply}),
        "SCRIPTED_DELAY_S": str(points[0].step_s),
        "SCRIPTED_ROW_S": str(args.row_ms / 1000),
        "MAX_BATCH": str(most),
        "DEFAULT_MAX_TOKENS": str(tokens + 16),
        "RATE_LIMIT_MESSAGES_PER_MINUTE": "0",
        "MAX_LIVE_REPLIES_PER_USER": "0",
        "QUOTA_TOKENS_PER_DAY": "1000000000",
        # As `make run` serves: DEBUG off (no query log), plain HTTP on loopback.
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
    }
    print(f"machine: {machine_description()}")
    rows: list[list[str]] = []
    started = time.perf_counter()
    with ExitStack() as exits:
        roots = (
            {f"baseline {args.baseline}": baseline_checkout(args.baseline, exits)} if args.baseline else {}
        )
        trees = open_trees({**roots, current_label(): ROOT}, env, most, max(daphne_counts), exits)
        database = "PostgreSQL" if trees[0].stack.database_url.startswith("postgres") else "SQLite"
        print(
            f"scripted engine, {f'{shortest}-{longest}' if lengths else tokens}-token replies, MAX_BATCH={most}, {database}, Redis 127.0.0.1, "
            f"{max(daphne_counts)} Daphne(s) per stack"
        )
        runs = [(point, count) for point in points for count in daphne_counts]
        for index, (point, count) in enumerate(runs):
            # Alternate which tree goes first, so a drift in the machine's load favours neither.
            measured = {}
            for tree in trees if index % 2 == 0 else trees[::-1]:
                profiled = point.chats == most and count == daphne_counts[-1]
                measured[tree.label] = measure(
                    tree,
                    point,
                    count,
                    tokens,
                    args.spread_ms / 1000,
                    args.profile,
                    profiled,
                    args.warm,
                    args.trace,
                    args.rounds,
                    args.think_ms / 1000,
                    lengths,
                )
                print(format_table(HEADERS, [measured[tree.label]], markdown=False), flush=True)
            rows += [measured[tree.label] for tree in trees]
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    print(format_table(HEADERS, rows, markdown=args.markdown))
    return 0 if all(row[-3] == "0" and row[-2] == "0" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
