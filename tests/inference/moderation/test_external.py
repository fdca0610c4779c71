"""The external endpoint adapter, against a fake moderation server on 127.0.0.1 that the test starts."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inference.moderation.base import API_CATEGORIES, CATEGORIES, Action, ModerationContext
from inference.moderation.chain import HookPolicy, ModerationChain
from inference.moderation.external import (
    OPENAI_CATEGORIES,
    ExternalModerationError,
    ExternalModerationHook,
    category_scores,
    request_body,
)

MESSAGES = ({"role": "user", "content": "How do I bake bread?"},)
CTX = ModerationContext("c", "m", "u", MESSAGES)


@dataclass
class FakeEndpoint:
    """What the fake server answers next, and what it was sent."""

    status: int = 200
    body: bytes = b"{}"
    delay_s: float = 0.0
    requests: list[dict] = field(default_factory=list)

    def answer(self, scores: dict[str, float], status: int = 200) -> None:
        self.status = status
        self.body = json.dumps(
            {"id": "x", "model": "m", "results": [{"categories": {}, "category_scores": scores}]}
        ).encode()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FakeEndpoint]]:
    endpoint = FakeEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", "0"))
            endpoint.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "json": json.loads(self.rfile.read(length)),
                }
            )
            time.sleep(endpoint.delay_s)
            self.send_response(endpoint.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(endpoint.body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                self.wfile.write(endpoint.body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", endpoint
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def endpoint(server: tuple[str, FakeEndpoint]) -> FakeEndpoint:
    fake = server[1]
    fake.status, fake.body, fake.delay_s = 200, b"{}", 0.0
    fake.requests.clear()
    return fake


def _hook(server: tuple[str, FakeEndpoint], path: str, **kwargs: object) -> ExternalModerationHook:
    return ExternalModerationHook(url=server[0] + path, **kwargs)  # type: ignore[arg-type]


# --- mapping -------------------------------------------------------------------------------------


def test_every_openai_category_maps_into_ours() -> None:
    for ours in OPENAI_CATEGORIES.values():
        assert ours and set(ours) <= set(CATEGORIES)


def test_openai_scores_take_the_highest_mapped_score() -> None:
    answer = {
        "results": [
            {
                "category_scores": {
                    "hate": 0.2,
                    "harassment/threatening": 0.7,
                    "violence": 0.4,
                    "new/thing": 0.9,
                }
            }
        ]
    }
    assert category_scores("openai", answer) == {"hate_and_discrimination": 0.7, "violence_and_threats": 0.7}


def test_mistral_scores_are_ours_by_name() -> None:
    scores = {name: i / 10 for i, name in enumerate(API_CATEGORIES)}
    assert category_scores("mistral", {"results": [{"category_scores": scores}]}) == scores
    # Not a category of theirs: an answer that had one would not be read into ours.
    assert category_scores("mistral", {"results": [{"category_scores": {"profanity": 0.9}}]}) == {}


@pytest.mark.parametrize(
    "answer",
    [{}, {"results": []}, {"results": [{}]}, {"results": [{"category_scores": []}]}, []]
    + [{"results": [{"category_scores": {"sexual": bad}}]} for bad in ("0.9", True, 1.5, -0.1, None)],
)
def test_answers_outside_the_schema_raise(answer: object) -> None:
    with pytest.raises(ExternalModerationError):
        category_scores("mistral", answer)


def test_request_bodies_per_schema() -> None:
    assert request_body("openai", "omni", "hi") == {"model": "omni", "input": "hi"}
    assert request_body("mistral", "mm", "hi") == {"model": "mm", "input": ["hi"]}
    chat = request_body("mistral-chat", "mm", "reply", MESSAGES)
    assert chat == {"model": "mm", "input": [[*MESSAGES, {"role": "assistant", "content": "reply"}]]}
    assert len(request_body("openai", "m", "x" * 100_000)["input"]) == 32_000  # capped


# --- over HTTP -------------------------------------------------------------------------------------


def test_openai_endpoint_flags_input_with_mapped_categories(server, endpoint: FakeEndpoint) -> None:
    endpoint.answer({"harassment": 0.91, "violence": 0.2, "self-harm/intent": 0.6})
    hook = _hook(server, "/v1/moderations", schema="openai", api_key="sk-test", action=Action.FLAG)
    verdict = hook.check_input(CTX)
    assert verdict.action is Action.FLAG
    assert verdict.categories == ("hate_and_discrimination", "selfharm")
    assert verdict.score == pytest.approx(0.91)
    [sent] = endpoint.requests
    assert sent["path"] == "/v1/moderations"
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["json"] == {"model": "omni-moderation-latest", "input": "How do I bake bread?"}
    assert "sk-test" not in verdict.reason


def test_mistral_endpoint_blocks_a_reply_over_the_threshold(server, endpoint: FakeEndpoint) -> None:
    endpoint.answer({"violence_and_threats": 0.8, "health": 0.3})
    hook = _hook(server, "/v1/moderation", schema="mistral", threshold=0.75)
    verdict = hook.check_output(CTX, "some reply")
    assert verdict.action is Action.BLOCK and verdict.categories == ("violence_and_threats",)
    assert endpoint.requests[0]["json"] == {"model": "mistral-moderation-latest", "input": ["some reply"]}
    assert "Authorization" not in endpoint.requests[0]["headers"]  # no key configured, none sent


def test_mistral_chat_endpoint_gets_the_conversation(server, endpoint: FakeEndpoint) -> None:
    endpoint.answer({name: 0.01 for name in CATEGORIES})
    hook = _hook(server, "/v1/chat/moderations", schema="mistral-chat", model="mistral-moderation-2411")
    assert hook.check_input(CTX).action is Action.ALLOW
    assert hook.check_output(CTX, "Knead the dough.").action is Action.ALLOW
    first, second = (r["json"] for r in endpoint.requests)
    assert first == {"model": "mistral-moderation-2411", "input": [list(MESSAGES)]}
    assert second["input"] == [[*MESSAGES, {"role": "assistant", "content": "Knead the dough."}]]


def test_empty_text_is_not_sent(server, endpoint: FakeEndpoint) -> None:
    hook = _hook(server, "/v1/moderations", schema="openai")
    assert hook.check_output(CTX, "  ").action is Action.ALLOW
    assert hook.check_input(ModerationContext("c", "m", "u")).action is Action.ALLOW
    assert endpoint.requests == []


@pytest.mark.parametrize(
    "status, body, message",
    [
        (500, b'{"error": "boom"}', "HTTP 500"),
        (401, b'{"error": "bad key"}', "HTTP 401"),
        (200, b"{not json", "not JSON"),
        (200, b'{"results": "nope"}', "not the mistral moderation schema"),
        (200, b"x" * 1_000_001, "size limit"),
    ],
)
def test_errors_raise(server, endpoint: FakeEndpoint, status: int, body: bytes, message: str) -> None:
    endpoint.status, endpoint.body = status, body
    with pytest.raises(ExternalModerationError, match=message):
        _hook(server, "/v1/moderations").check_output(CTX, "text")


def test_timeout_raises(server, endpoint: FakeEndpoint) -> None:
    endpoint.answer({"sexual": 0.0})
    endpoint.delay_s = 1.0
    started = time.monotonic()
    with pytest.raises(ExternalModerationError, match="timed out"):
        _hook(server, "/v1/moderations", timeout_s=0.2).check_output(CTX, "text")
    assert time.monotonic() - started < 0.9


def test_unreachable_endpoint_raises() -> None:
    hook = ExternalModerationHook(url="http://127.0.0.1:9/v1/moderations", timeout_s=1.0)
    with pytest.raises(ExternalModerationError, match="unreachable|timed out"):
        hook.check_output(CTX, "text")


@pytest.mark.parametrize("fail_closed, action", [(False, Action.ALLOW), (True, Action.BLOCK)])
def test_the_chain_applies_its_failure_policy(server, endpoint: FakeEndpoint, fail_closed, action) -> None:
    endpoint.status, endpoint.body = 500, b"{}"
    hook = _hook(server, "/v1/moderations")
    chain = ModerationChain([(hook, HookPolicy(budget_ms=hook.budget_ms, fail_closed=fail_closed))])
    [verdict] = chain.check_output(CTX, "text")
    assert verdict.action is action
    assert verdict.hook == "external" and "HTTP 500" in verdict.error


def test_the_hook_brings_its_own_budget_to_the_chain() -> None:
    hook = ExternalModerationHook(url="http://127.0.0.1:9/x", timeout_s=3.0)
    assert hook.budget_ms == pytest.approx(3250.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "ftp://host/x"},
        {"url": "http://h/x", "schema": "anthropic"},
        {"url": "http://h/x", "timeout_s": 0},
        {"url": "http://h/x", "threshold": 0},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ExternalModerationHook(**kwargs)
