"""The web path's own cost: real Daphne, Redis and a Celery worker with the tiny model.

Starts the whole stack as the integration tests do (`tests/support/stack.py`),
signs a user up, and measures through a real websocket:

(a) latency: `send` -> first `token` event at the client, minus the engine's
    own TTFT (`done.stats.ttft_ms`, measured by the worker from the start of
    the reply to the first generated id), p50/p99 over `--sends` replies. What
    is left is the consumer, the database writes, Celery, the worker's claim,
    the coalescing hold of the first piece of text, Redis and Daphne.
    Target: <= 15 ms p50.
(b) throughput of one reply through the channel layer to a socket, two ways:
    - a real reply of `--long-tokens` tokens from the worker: capped by the
      tiny model's own decode speed on this CPU;
    - the pipe alone: a thread in this process publishes synthetic coalesced
      `token` events with `webapp.chat.reply_jobs.reply_delta` (the worker's own
      call: live state in Redis, then `group_send`) as fast as it can, each
      carrying `--tokens-per-event` tokens (STREAM_COALESCE_TOKENS, 16), and
      the socket counts what arrives. Target: >= 20,000 tokens/s.

    .venv/bin/python bench/pipeline.py
    .venv/bin/python bench/pipeline.py --coalesce-tokens 1 --markdown   # first token flushed at once
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402

from bench.common import fmt, format_table, machine_description, percentile  # noqa: E402
from tests.support.stack import Client, Stack  # noqa: E402

TIMEOUT_S = 120.0


async def next_event(socket: websockets.ClientConnection) -> tuple[float, dict]:
    raw = await asyncio.wait_for(socket.recv(), TIMEOUT_S)
    return time.perf_counter(), json.loads(raw)


async def one_reply(socket: websockets.ClientConnection, content: str, params: dict) -> dict:
    """Send one message; return client-side times (s) of its events and the `done` event."""
    sent = time.perf_counter()
    await socket.send(json.dumps({"type": "send", "content": content, "params": params}))
    start_at = first_at = None
    message_id = None
    tokens = 0
    chars = 0
    while True:
        at, event = await next_event(socket)
        kind = event["type"]
        if kind == "error":
            raise RuntimeError(f"the server refused the send: {event}")
        if kind == "start":
            start_at, message_id = at, event["message_id"]
        elif kind == "token" and event["message_id"] == message_id:
            first_at = first_at or at
            tokens += 1
            chars += len(event["text"])
        elif kind == "done" and event["message_id"] == message_id:
            if event["status"] != "complete":
                raise RuntimeError(f"the reply ended {event['status']}: {event.get('error')}")
            return {
                "sent": sent,
                "start": start_at,
                "first": first_at,
                "done": at,
                "events": tokens,
                "chars": chars,
                "stats": event["stats"],
            }


async def measure_latency(client: Client, sends: int, max_tokens: int, warmup: int) -> list[dict]:
    conversation = client.new_conversation()
    results = []
    async with client.connect(conversation) as socket:
        for index in range(warmup + sends):
            reply = await one_reply(
                socket, f"Benchmark message {index}.", {"max_tokens": max_tokens, "temperature": 0}
            )
            if index >= warmup and reply["first"] is not None:
                results.append(reply)
    return results


async def measure_long_reply(client: Client, max_tokens: int) -> dict:
    conversation = client.new_conversation()
    async with client.connect(conversation) as socket:
        return await one_reply(socket, "Write a long story.", {"max_tokens": max_tokens, "temperature": 0})


def setup_django(stack: Stack) -> None:
    """Configure Django in this process as the stack's processes are: same Redis and prefix."""
    for name in ("DEBUG", "DATABASE_URL", "REDIS_URL", "REDIS_PREFIX"):
        if name in stack.env:
            os.environ[name] = stack.env[name]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()


async def measure_pipe(client: Client, events: int, tokens_per_event: int) -> dict:
    """Publish `events` synthetic token events from a thread; time their arrival at a socket."""
    from webapp.chat import live, reply_jobs

    conversation = client.new_conversation()
    message_id = str(uuid.uuid4())  # no such message: the consumer forwards token events by seq alone
    text = " tok" * tokens_per_event
    published: dict[str, float] = {}

    def publisher() -> None:
        published["start"] = time.perf_counter()
        for seq in range(1, events + 1):
            reply_jobs.reply_delta(conversation_id=conversation, message_id=message_id, seq=seq, text=text)
        published["end"] = time.perf_counter()

    async with client.connect(conversation) as socket:
        # One event first so that the group, the layer's connection and the publisher's loop are warm.
        reply_jobs.reply_delta(conversation_id=conversation, message_id=message_id, seq=1, text=text)
        while (await next_event(socket))[1].get("seq") != 1:
            pass
        message_id = str(uuid.uuid4())
        thread = threading.Thread(target=publisher, daemon=True)
        thread.start()
        received = 0
        chars = 0
        last_at = 0.0
        while received < events:
            last_at, event = await next_event(socket)
            if event.get("type") == "token" and event["message_id"] == message_id:
                received += 1
                chars += len(event["text"])
        thread.join()
    live.clear_reply(message_id)
    # Where the publisher's time goes: its two steps alone, to a group no socket is in.
    probe_id, probe_conversation = str(uuid.uuid4()), str(uuid.uuid4())
    count = min(events, 1000)
    began = time.perf_counter()
    for seq in range(1, count + 1):
        live.record_delta(probe_id, seq, text)
    record_s = (time.perf_counter() - began) / count
    began = time.perf_counter()
    for seq in range(1, count + 1):
        live.publish(probe_conversation, {"type": "token", "message_id": probe_id, "seq": seq, "text": text})
    publish_s = (time.perf_counter() - began) / count
    live.clear_reply(probe_id)
    return {
        "record_ms": record_s * 1000,
        "group_send_ms": publish_s * 1000,
        "events": received,
        "chars": chars,
        "tokens": received * tokens_per_event,
        "seconds": last_at - published["start"],
        "publish_seconds": published["end"] - published["start"],
    }


def report(latency: list[dict], long_reply: dict, pipe: dict, args: argparse.Namespace) -> None:
    def ms(values: list[float]) -> tuple[str, str]:
        return fmt(percentile(values, 50)), fmt(percentile(values, 99))

    to_start = [(r["start"] - r["sent"]) * 1000 for r in latency]
    to_first = [(r["first"] - r["sent"]) * 1000 for r in latency]
    ttft = [float(r["stats"]["ttft_ms"]) for r in latency]
    overhead = [a - b for a, b in zip(to_first, ttft, strict=True)]
    after_start = [a - b for a, b in zip(overhead, to_start, strict=True)]
    print(f"(a) send -> first token, {len(latency)} replies of {args.latency_max_tokens} tokens")
    rows = [
        ["send -> start event", *ms(to_start)],
        ["send -> first token event", *ms(to_first)],
        ["engine TTFT (done.stats.ttft_ms)", *ms(ttft)],
        ["start event -> first token event - engine TTFT", *ms(after_start)],
        ["web path = send -> first token event - engine TTFT", *ms(overhead)],
    ]
    print(format_table(["what", "p50 ms", "p99 ms"], rows, markdown=args.markdown))

    print()
    print("(b) one reply through the channel layer to a socket")
    stats = long_reply["stats"]
    span = long_reply["done"] - long_reply["first"]
    real_tokens = int(stats["completion_tokens"])
    rows = [
        [
            f"real reply, tiny model (its own speed: {fmt(stats['tokens_per_s'], 0)} tok/s)",
            f"{real_tokens:,}",
            f"{long_reply['events']:,}",
            f"{long_reply['chars']:,}",
            fmt(span, 2),
            fmt(real_tokens / span if span > 0 else None, 0),
            fmt(long_reply["events"] / span if span > 0 else None, 0),
        ],
        [
            f"pipe alone: reply_delta, {args.tokens_per_event} tokens/event",
            f"{pipe['tokens']:,}",
            f"{pipe['events']:,}",
            f"{pipe['chars']:,}",
            fmt(pipe["seconds"], 2),
            fmt(pipe["tokens"] / pipe["seconds"], 0),
            fmt(pipe["events"] / pipe["seconds"], 0),
        ],
    ]
    headers = ["source", "tokens", "events", "chars", "seconds", "tokens/s", "events/s"]
    print(format_table(headers, rows, markdown=args.markdown))
    print(
        f"publisher side alone: {pipe['events']:,} reply_delta calls in {pipe['publish_seconds']:.2f} s = "
        f"{pipe['events'] / pipe['publish_seconds']:,.0f} events/s; per call, alone: live.record_delta "
        f"{pipe['record_ms']:.3f} ms, live.publish (group_send, awaited) {pipe['group_send_ms']:.3f} ms"
    )


async def run(stack: Stack, args: argparse.Namespace) -> tuple[list[dict], dict, dict]:
    client = Client(stack).signup()
    latency = await measure_latency(client, args.sends, args.latency_max_tokens, args.warmup)
    print(f"  (a) done: {len(latency)} replies", file=sys.stderr, flush=True)
    long_reply = await measure_long_reply(client, args.long_tokens)
    print("  (b) real reply done", file=sys.stderr, flush=True)
    setup_django(stack)
    pipe = await measure_pipe(client, args.pipe_events, args.tokens_per_event)
    return latency, long_reply, pipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=40, help="timed replies for (a) (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed replies first (default 3)")
    parser.add_argument("--latency-max-tokens", type=int, default=8, help="reply length in (a) (default 8)")
    parser.add_argument(
        "--long-tokens", type=int, default=4000, help="the real long reply of (b) (default 4000)"
    )
    parser.add_argument(
        "--pipe-events", type=int, default=3000, help="synthetic events in (b) (default 3000)"
    )
    parser.add_argument(
        "--tokens-per-event", type=int, default=16, help="tokens per synthetic event (default 16)"
    )
    parser.add_argument(
        "--coalesce-ms", type=int, help="the stack's STREAM_COALESCE_MS (default: the app's, 30)"
    )
    parser.add_argument(
        "--coalesce-tokens", type=int, help="the stack's STREAM_COALESCE_TOKENS (default: the app's, 16)"
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    args = parser.parse_args(argv)

    extra_env = {"MAX_TOKENS_LIMIT": str(max(4096, args.long_tokens))}
    if args.coalesce_ms is not None:
        extra_env["STREAM_COALESCE_MS"] = str(args.coalesce_ms)
    if args.coalesce_tokens is not None:
        extra_env["STREAM_COALESCE_TOKENS"] = str(args.coalesce_tokens)
    print(f"machine: {machine_description()}")
    settings_note = ", ".join(f"{k}={v}" for k, v in extra_env.items())
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        stack = Stack(tmp=Path(tmp), extra_env=extra_env)
        started = time.perf_counter()
        try:
            stack.start()
            database = "PostgreSQL" if stack.database_url.startswith("postgres") else "SQLite"
            print(
                f"stack: Daphne + Celery worker (threads, MAX_BATCH={stack.env['MAX_BATCH']}) + Redis, "
                f"{database}, tiny model; {settings_note}; ready in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            latency, long_reply, pipe = asyncio.run(run(stack, args))
        except BaseException:
            print(stack.logs(), file=sys.stderr)
            raise
        finally:
            stack.stop()
    print()
    report(latency, long_reply, pipe, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
