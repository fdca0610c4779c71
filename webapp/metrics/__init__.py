"""The Prometheus series of Daphne and the workers, and the one-line helpers that move them.

Every process defines the same metrics at import. With PROMETHEUS_MULTIPROC_DIR
set (`make run` sets it) each process writes its values to files there and
`/metrics` (webapp/metrics/views.py) adds them up, so several Daphnes and
workers on one machine read as one. The series read from Redis at scrape time
(queue, workers, engine load) are in webapp/metrics/collectors.py.

Nothing here runs per token: replies are counted once, as they end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

PREFIX = "mchat"
# Latencies of pages and socket events: milliseconds to a few seconds.
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Waits that grow with load: the queue and the first token.
WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
RATE_BUCKETS = (1, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000)
# The socket's client event types; anything else is counted as "unknown" (a bounded label).
SOCKET_EVENT_TYPES = frozenset({"send", "stop", "regenerate", "edit", "settings", "resume"})

http_requests = Counter(
    f"{PREFIX}_http_requests", "HTTP requests answered, by route and status.", ["method", "route", "status"]
)
http_latency = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["method", "route"],
    buckets=FAST_BUCKETS,
)
socket_connects = Counter(
    f"{PREFIX}_socket_connects", "Websocket connections, by outcome (open, or the close code).", ["outcome"]
)
# livesum: the files of a Daphne that died drop out (views.forget_dead_processes).
sockets_open = Gauge(f"{PREFIX}_sockets_open", "Chat websockets open now.", multiprocess_mode="livesum")
socket_event_latency = Histogram(
    f"{PREFIX}_socket_event_duration_seconds",
    "Time to handle one client event on a chat socket, by type and outcome.",
    ["type", "outcome"],
    buckets=FAST_BUCKETS,
)
replies = Counter(f"{PREFIX}_replies", "Replies ended, by status.", ["status"])
queue_wait = Histogram(
    f"{PREFIX}_reply_queue_wait_seconds", "Time a reply waited for a worker.", buckets=WAIT_BUCKETS
)
ttft = Histogram(f"{PREFIX}_reply_ttft_seconds", "Time to a reply's first token.", buckets=WAIT_BUCKETS)
tokens_per_s = Histogram(
    f"{PREFIX}_reply_tokens_per_second", "Decoding speed of one reply.", buckets=RATE_BUCKETS
)
tokens_generated = Counter(f"{PREFIX}_tokens_generated", "Completion tokens of ended replies.")
prompt_tokens = Counter(f"{PREFIX}_prompt_tokens", "Prompt tokens of ended replies.")
moderation_events = Counter(
    f"{PREFIX}_moderation_events", "Moderation events stored, by hook and action.", ["hook", "action"]
)
worker_heartbeats = Counter(f"{PREFIX}_worker_heartbeats", "Heartbeats written by the workers.")


def http_request(*, method: str, route: str, status: int, seconds: float) -> None:
    http_requests.labels(method, route, str(status)).inc()
    http_latency.labels(method, route).observe(seconds)


def socket_connected(outcome: str) -> None:
    """A socket accepted ("open") or closed at once (its close code)."""
    socket_connects.labels(outcome).inc()
    if outcome == "open":
        sockets_open.inc()


def socket_closed() -> None:
    """An open socket ended (only those counted "open" by socket_connected)."""
    sockets_open.dec()


@contextmanager
def socket_event(event_type: object) -> Iterator[None]:
    """Time one client event; an exception (a refused event) is counted as "error" and passed on."""
    label = event_type if isinstance(event_type, str) and event_type in SOCKET_EVENT_TYPES else "unknown"
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        socket_event_latency.labels(label, outcome).observe(time.perf_counter() - started)


def reply_claimed(*, queue_ms: float) -> None:
    queue_wait.observe(max(queue_ms, 0.0) / 1000.0)


def reply_finished(*, status: str, stats: dict[str, Any]) -> None:
    """One ended reply: its status, tokens and speeds (the worker's `done.stats`)."""
    replies.labels(status).inc()
    tokens_generated.inc(stats.get("completion_tokens") or 0)
    prompt_tokens.inc(stats.get("prompt_tokens") or 0)
    if stats.get("ttft_ms") is not None:
        ttft.observe(stats["ttft_ms"] / 1000.0)
    if stats.get("tokens_per_s"):
        tokens_per_s.observe(stats["tokens_per_s"])


def moderation_recorded(verdicts: Sequence[Any]) -> None:
    """Stored moderation events (anything with `hook` and `action`)."""
    for verdict in verdicts:
        moderation_events.labels(verdict.hook or "unknown", str(verdict.action)).inc()


def heartbeat_written() -> None:
    worker_heartbeats.inc()
