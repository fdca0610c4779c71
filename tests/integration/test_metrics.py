"""/metrics scraped from the real stack (Daphne + worker on Redis, scripted engine) before, during and after a reply.

The claim: every series the operations guide names is there, and the ones a
reply should move do move. Daphne and the worker are separate processes that
write to one PROMETHEUS_MULTIPROC_DIR, so this is also the multiprocess sum.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_reply_stream import next_event
from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration

TOKEN = "integration-metrics-token"
# Long enough (about 60 tokens at 50 ms a step) for scrapes while it streams; "sunny" is flagged.
REPLY = "It is sunny today, " + "and the wind is calm over the quiet hills " * 6 + "all day."
FLAG_SUNNY = {"category": "health", "action": "flag", "kind": "word", "pattern": "sunny"}


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("metrics"))
    (tmp / "prometheus").mkdir()
    stack = Stack(
        tmp=tmp,
        database="sqlite",
        extra_env={
            "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
            "SCRIPTED_REPLIES": json.dumps({"weather": REPLY}),
            "SCRIPTED_DELAY_S": "0.05",
            "WORKER_HEARTBEAT_S": "1",
            "METRICS_TOKEN": TOKEN,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),
        },
    )
    stack.start()
    stack.import_rules([FLAG_SUNNY])
    try:
        yield stack
    finally:
        stack.stop()


def scrape(stack: Stack, token: str | None = TOKEN) -> dict[str, float]:
    """Every sample as `name{label="value",...}` (labels sorted) -> value; summed over nothing."""
    request = urllib.request.Request(stack.base_url + "/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def total(samples: dict[str, float], name: str, **labels: str) -> float | None:
    """The sum of `name` over the samples that carry `labels`; None if there is none."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    values = [
        value
        for key, value in samples.items()
        if key.split("{", 1)[0] == name and all(part in key for part in wanted)
    ]
    return sum(values) if values else None


def test_a_scrape_needs_the_token(observed: Stack) -> None:
    for token, status in ((None, 401), ("wrong", 403)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(observed, token)
        assert refused.value.code == status


async def test_every_series_is_there_and_a_reply_moves_them(observed: Stack) -> None:
    before = await asyncio.to_thread(scrape, observed)
    client = await asyncio.to_thread(lambda: Client(observed).signup())
    conversation = await asyncio.to_thread(client.new_conversation)
    during: list[dict[str, float]] = []
    async with client.connect(conversation) as ws:
        await ws.send(json.dumps({"type": "send", "content": "How is the weather?"}))
        await next_event(ws, "token")
        while True:
            during.append(await asyncio.to_thread(scrape, observed))
            event = await next_event(ws)
            if event["type"] == "done":
                break
        assert event["status"] == "complete"
    after = await _settled(observed, before)

    def moved(name: str, **labels: str) -> float:
        was, now = total(before, name, **labels) or 0.0, total(after, name, **labels)
        assert now is not None, f"{name} {labels} is missing"
        return now - was

    assert moved("mchat_http_requests_total", route="c/new/") >= 1
    assert moved("mchat_http_request_duration_seconds_count") >= 3  # sign-up pages, new chat, scrapes
    assert moved("mchat_socket_connects_total", outcome="open") == 1
    assert moved("mchat_socket_event_duration_seconds_count", type="send", outcome="ok") == 1
    assert moved("mchat_replies_total", status="complete") == 1
    assert moved("mchat_reply_queue_wait_seconds_count") == 1
    assert moved("mchat_reply_ttft_seconds_count") == 1
    assert moved("mchat_reply_tokens_per_second_count") == 1
    assert moved("mchat_tokens_generated_total") == event["stats"]["completion_tokens"] > 0
    assert moved("mchat_prompt_tokens_total") == event["stats"]["prompt_tokens"] > 0
    assert moved("mchat_moderation_events_total", action="flag") >= 1
    assert moved("mchat_worker_heartbeats_total") >= 1
    # Open sockets: one more while the reply streamed, back where it was once the socket closed.
    assert (
        max(total(s, "mchat_sockets_open") or 0 for s in during)
        == (total(before, "mchat_sockets_open") or 0) + 1
    )
    assert total(after, "mchat_sockets_open") == (total(before, "mchat_sockets_open") or 0)
    # The engine's load, from the worker's heartbeat: busy while it streamed.
    assert max(total(s, "mchat_engine_active_replies") or 0 for s in during) >= 1
    assert max(total(s, "mchat_engine_batch_occupancy") or 0 for s in during) > 0
    assert total(after, "mchat_engine_max_batch") == 4
    for name in ("mchat_queue_length", "mchat_worker_heartbeat_age_seconds", "mchat_redis_up"):
        assert total(after, name) is not None, name
    assert total(after, "mchat_workers", state="ready") == 1


async def _settled(stack: Stack, before: dict[str, float]) -> dict[str, float]:
    """A scrape once the closed socket and a fresh heartbeat have been counted (a few seconds at most)."""
    deadline = time.monotonic() + 10
    while True:
        after = await asyncio.to_thread(scrape, stack)
        closed = total(after, "mchat_sockets_open") == (total(before, "mchat_sockets_open") or 0)
        beat = (total(after, "mchat_worker_heartbeats_total") or 0) > (
            total(before, "mchat_worker_heartbeats_total") or 0
        )
        if (closed and beat) or time.monotonic() > deadline:
            return after
        await asyncio.sleep(0.3)
