"""Load: many concurrent sockets, each sending several messages, through the real stack.

Starts Daphne, Redis and one Celery worker (tests/support/stack.py; the tiny
model by default, or the scripted engine with `--scripted`), opens `--sockets`
websockets (one conversation each, spread over `--users` people), and on
each sends `--messages` messages one after another, waiting for each reply.
Then the same again with two Daphne processes and two workers on the same
Redis, the sockets spread over both Daphnes.

Counted: replies lost (no `done` in time, or not `complete`), replies
duplicated (a second `done`, a stored reply too many, streamed text that is
not the `done` content); TTFT (send -> first `token`) p50/p99; completion
(send -> `done`) p99; the peak resident memory (VmHWM) of each Daphne and
worker; and how the replies spread over the workers.

    .venv/bin/python bench/load.py                  # 200 sockets x 5 messages, tiny model
    .venv/bin/python bench/load.py --scripted --markdown
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websockets  # noqa: E402

from bench.common import fmt, format_table, machine_description, percentile  # noqa: E402
from tests.support.stack import Client, Stack, free_port  # noqa: E402

REPLY_TIMEOUT_S = 300.0
SCRIPTED_REPLY = "A short scripted answer, streamed token by token."


@dataclass
class Outcome:
    ttft_ms: list[float] = field(default_factory=list)
    completion_ms: list[float] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    reply_ids: list[str] = field(default_factory=list)


async def converse(
    url: str, headers: dict[str, str], messages: int, max_tokens: int, outcome: Outcome
) -> None:
    """One socket: send, wait for the whole reply, then the next message."""
    async with websockets.connect(url, additional_headers=headers, max_size=None, open_timeout=60) as ws:
        for number in range(messages):
            sent = time.perf_counter()
            await ws.send(
                json.dumps(
                    {
                        "type": "send",
                        "content": f"Message {number}: say something.",
                        "params": {"max_tokens": max_tokens},
                    }
                )
            )
            first: float | None = None
            streamed, reply_id = "", None
            try:
                while True:
                    event = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
                    if event["type"] == "start":
                        reply_id = reply_id or event["message_id"]
                    elif event["type"] == "token" and event["message_id"] == reply_id:
                        first = first or time.perf_counter()
                        streamed += event["text"]
                    elif event["type"] == "done" and event["message_id"] == reply_id:
                        break
                    elif event["type"] == "error":
                        raise RuntimeError(f"refused: {event}")
            except (TimeoutError, RuntimeError, websockets.ConnectionClosed) as failure:
                print(f"lost a reply: {failure!r}", file=sys.stderr)
                outcome.lost += 1
                return
            done_at = time.perf_counter()
            if event["status"] != "complete":
                outcome.lost += 1
                continue
            if streamed != event["content"]:
                outcome.duplicated += 1  # text repeated (or missing) on the way
            outcome.reply_ids.append(reply_id)
            outcome.completion_ms.append((done_at - sent) * 1000)
            if first is not None:
                outcome.ttft_ms.append((first - sent) * 1000)
        # A second `done` (or any stray token) for a finished reply would arrive now.
        try:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                if event["type"] in {"done", "token"}:
                    outcome.duplicated += 1
        except TimeoutError:
            pass


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def replies_per_worker(stack: Stack) -> list[int]:
    logs = sorted(stack.tmp.glob("worker-*.log"))
    return [
        len(re.findall(r"inference\.generate_reply\[[^\]]+\] succeeded", log.read_text())) for log in logs
    ]


async def run_load(stack: Stack, ports: list[int], args: argparse.Namespace) -> tuple[Outcome, float, int]:
    people = [Client(stack).signup() for _ in range(args.users)]
    sockets = []
    for index in range(args.sockets):
        person = people[index % len(people)]
        conversation = person.new_conversation()
        port = ports[index % len(ports)]
        sockets.append(
            (
                f"ws://127.0.0.1:{port}/ws/conversations/{conversation}/",
                {**person.socket_headers(), "Origin": f"http://127.0.0.1:{port}"},
                conversation,
            )
        )
    outcome = Outcome()
    started = time.perf_counter()
    await asyncio.gather(
        *(converse(url, headers, args.messages, args.max_tokens, outcome) for url, headers, _ in sockets)
    )
    elapsed = time.perf_counter() - started
    # What the database holds: one complete reply per message, never two.
    stored_extra = 0
    for _, _, conversation in sockets[:: max(1, len(sockets) // 20)]:  # a sample: each read is a process
        rows = stack.stored_messages(conversation)
        replies = [m for m in rows if m["role"] == "assistant"]
        stored_extra += max(0, len(replies) - args.messages)
    outcome.duplicated += stored_extra + len(outcome.reply_ids) - len(set(outcome.reply_ids))
    return outcome, elapsed, len(sockets)


def row(label: str, outcome: Outcome, elapsed: float, stack: Stack, args: argparse.Namespace) -> list[str]:
    expected = args.sockets * args.messages
    daphnes = [p for p in stack.processes if "daphne" in " ".join(p.args)]
    workers = [p for p in stack.processes if "celery" in " ".join(p.args)]
    return [
        label,
        f"{len(outcome.completion_ms)}/{expected}",
        str(outcome.lost),
        str(outcome.duplicated),
        fmt(percentile(outcome.ttft_ms, 50), 0),
        fmt(percentile(outcome.ttft_ms, 99), 0),
        fmt(percentile(outcome.completion_ms, 99), 0),
        f"{len(outcome.completion_ms) / elapsed:.1f}",
        " + ".join(f"{peak_rss_mb(p.pid):.0f}" for p in daphnes),
        " + ".join(f"{peak_rss_mb(p.pid):.0f}" for p in workers),
        " / ".join(map(str, replies_per_worker(stack))),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5, help="messages per socket, one after another")
    parser.add_argument("--users", type=int, default=20, help="people the sockets belong to")
    parser.add_argument("--max-tokens", type=int, default=16, help="reply length (default 16)")
    parser.add_argument("--max-batch", type=int, default=32, help="each worker's MAX_BATCH (default 32)")
    parser.add_argument(
        "--scripted", action="store_true", help="the scripted engine instead of the tiny model"
    )
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)

    extra_env = {"MAX_BATCH": str(args.max_batch)}
    if args.scripted:
        extra_env |= {
            "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
            "SCRIPTED_REPLIES": json.dumps({"say something": SCRIPTED_REPLY}),
            "SCRIPTED_DELAY_S": "0.002",
        }
    engine = "scripted engine" if args.scripted else "tiny model"
    print(f"machine: {machine_description()}")
    headers = [
        "setup",
        "replies",
        "lost",
        "duplicated",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "completion p99 ms",
        "replies/s",
        "Daphne peak RSS MB",
        "worker peak RSS MB",
        "replies per worker",
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        stack = Stack(tmp=Path(tmp), extra_env=extra_env)
        try:
            stack.start()
            database = "PostgreSQL" if stack.database_url.startswith("postgres") else "SQLite"
            print(f"stack: {engine}, MAX_BATCH={args.max_batch}, {database}, Redis on 127.0.0.1", flush=True)
            outcome, elapsed, _ = asyncio.run(run_load(stack, [stack.port], args))
            rows.append(row("1 Daphne + 1 worker", outcome, elapsed, stack, args))
            print(format_table(headers, rows[-1:], markdown=False), flush=True)

            second_port = free_port()
            stack.start_worker()
            stack.start_daphne(second_port)
            stack.wait_ready()
            time.sleep(5)  # the second worker's model loads in the background
            for log in stack.tmp.glob("worker-*.log"):  # count only this round's replies
                log.write_text("")
            outcome, elapsed, _ = asyncio.run(run_load(stack, [stack.port, second_port], args))
            rows.append(row("2 Daphne + 2 workers", outcome, elapsed, stack, args))
        except BaseException:
            print(stack.logs(), file=sys.stderr)
            raise
        finally:
            stack.stop()
    print(f"\n{args.sockets} sockets x {args.messages} messages, {args.max_tokens}-token replies, {engine}")
    print(format_table(headers, rows, markdown=args.markdown))
    return 0 if all(r[2] == "0" and r[3] == "0" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
