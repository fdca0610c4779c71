"""SQLite under a crowd: N people, each in a conversation of their own, send at the same moment.

Starts the real stack (tests/support/stack.py) on the SQLite file that
`make run` uses by default (`--database auto`: PostgreSQL when it answers),
with the scripted engine at `--step-ms` a token and one worker of
`--max-batch` threads. Signs up the people once; then, for each N of
`--senders`, opens N websockets (a new conversation each), waits until all
are open, and sends on every one at the same moment.

Counted per round: replies `complete`; replies that ended otherwise; sockets
closed on the way (with their close codes: 1011 is a server error); replies
that never came; `database is locked` lines in the logs so far; send -> the
echoed `message` (stored: the transaction that writes the message and the
queued reply has committed), send -> first `token` (TTFT) and send -> `done`
(completion), p50 and p99.

    .venv/bin/python bench/sqlite_senders.py --senders 64 128 256 --markdown
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websockets  # noqa: E402

from bench.common import fmt, format_table, machine_description, percentile  # noqa: E402
from tests.support.stack import Client, Stack  # noqa: E402

REPLY_TIMEOUT_S = 300.0
TRIGGER = "at the same moment"
SCRIPTED_REPLY = "One short scripted answer for each person, streamed token by token."


@dataclass
class Round:
    senders: int
    complete: int = 0
    ended_otherwise: Counter = field(default_factory=Counter)
    closed: Counter = field(default_factory=Counter)
    timed_out: int = 0
    stored_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    completion_ms: list[float] = field(default_factory=list)


async def ask(ws: websockets.ClientConnection, go: asyncio.Event, result: Round) -> None:
    """Send when everyone is ready; wait for this socket's reply and record how it went."""
    await go.wait()
    sent = time.perf_counter()
    await ws.send(json.dumps({"type": "send", "content": f"Answer me {TRIGGER}."}))
    first: float | None = None
    try:
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
            if event["type"] == "message":
                result.stored_ms.append((time.perf_counter() - sent) * 1000)
            elif event["type"] == "token" and first is None:
                first = time.perf_counter()
            elif event["type"] == "done":
                break
            elif event["type"] == "error":
                result.ended_otherwise[event["code"]] += 1
                return
    except websockets.ConnectionClosed as closed:
        result.closed[closed.rcvd.code if closed.rcvd else "no close frame"] += 1
        return
    except TimeoutError:
        result.timed_out += 1
        return
    if event["status"] != "complete":
        result.ended_otherwise[event["status"]] += 1
        return
    result.complete += 1
    result.completion_ms.append((time.perf_counter() - sent) * 1000)
    if first is not None:
        result.ttft_ms.append((first - sent) * 1000)


async def send_at_once(people: list[Client]) -> Round:
    result = Round(senders=len(people))
    conversations = await asyncio.gather(*(asyncio.to_thread(person.new_conversation) for person in people))
    sockets = [
        await websockets.connect(
            person.socket_url(conversation), additional_headers=person.socket_headers(), open_timeout=60
        )
        for person, conversation in zip(people, conversations, strict=True)
    ]
    go = asyncio.Event()
    try:
        asking = [asyncio.create_task(ask(ws, go, result)) for ws in sockets]
        await asyncio.sleep(0)
        go.set()
        await asyncio.gather(*asking)
    finally:
        for ws in sockets:
            await ws.close()
    return result


def locked_lines(stack: Stack) -> int:
    return sum(log.read_text(errors="replace").count("database is locked") for log in stack.tmp.glob("*.log"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--database", choices=["sqlite", "auto"], default="sqlite")
    parser.add_argument("--max-batch", type=int, default=32, help="the worker's MAX_BATCH (default 32)")
    parser.add_argument("--step-ms", type=float, default=10.0, help="the scripted engine's time a token")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)

    print(f"machine: {machine_description()}", flush=True)
    headers = [
        "senders",
        "complete",
        "ended otherwise",
        "sockets closed",
        "no reply",
        "'database is locked'",
        "stored p50 ms",
        "stored p99 ms",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "completion p50 ms",
        "completion p99 ms",
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
        stack = Stack(
            tmp=Path(tmp),
            database=args.database,
            extra_env={
                "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
                "SCRIPTED_REPLIES": json.dumps({TRIGGER: SCRIPTED_REPLY}),
                "SCRIPTED_DELAY_S": str(args.step_ms / 1000),
                "MAX_BATCH": str(args.max_batch),
            },
        )
        try:
            stack.start()
            print(f"stack: {stack.database_url.split(':')[0]}, MAX_BATCH={args.max_batch}", flush=True)
            with ThreadPoolExecutor(max_workers=2) as pool:
                people = list(pool.map(lambda _: Client(stack).signup(), range(max(args.senders))))
            for senders in args.senders:
                result = asyncio.run(send_at_once(people[:senders]))
                rows.append(
                    [
                        str(senders),
                        f"{result.complete}/{senders}",
                        ", ".join(f"{k} {v}" for k, v in result.ended_otherwise.items()) or "0",
                        ", ".join(f"{k} {v}" for k, v in result.closed.items()) or "0",
                        str(result.timed_out),
                        str(locked_lines(stack)),
                        fmt(percentile(result.stored_ms, 50), 0),
                        fmt(percentile(result.stored_ms, 99), 0),
                        fmt(percentile(result.ttft_ms, 50), 0),
                        fmt(percentile(result.ttft_ms, 99), 0),
                        fmt(percentile(result.completion_ms, 50), 0),
                        fmt(percentile(result.completion_ms, 99), 0),
                    ]
                )
                print(format_table(headers, rows[-1:], markdown=False), flush=True)
        except BaseException:
            print(stack.logs(), file=sys.stderr)
            raise
        finally:
            stack.stop()
    print(f"\n{SCRIPTED_REPLY!r} at {args.step_ms:g} ms a token, one Daphne, one worker")
    print(format_table(headers, rows, markdown=args.markdown))
    return 0 if all(row[1] == f"{row[0]}/{row[0]}" and row[5] == "0" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
