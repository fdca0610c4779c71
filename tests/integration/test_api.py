"""The OpenAI-compatible API through real Daphne and a real worker, with the official `openai` client.

A scripted engine says what we choose, so texts, stop sequences and token
counts are exact; a block rule shows moderation on the same requests.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import redis

from inference.chat_template import sentencepiece_processor
from tests.integration.test_moderation import BLOCK_MISSILES
from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration

HELLO = "Hello there! How can I help you today?"
PLAN = (
    "Sure. Here is the whole plan, step by step, as you asked for it earlier today. "
    "First we gather the team, then we launch the missiles at dawn, and then we rest."
)
LONG = " ".join(f"word{i}" for i in range(600))
REPLIES = {"greet me": HELLO, "the plan": PLAN, "go long": LONG}


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("api"))
    stack = Stack(
        tmp=tmp,
        extra_env={
            "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
            "SCRIPTED_REPLIES": json.dumps(REPLIES),
            "SCRIPTED_DELAY_S": "0.01",
        },
    )
    stack.start()
    stack.import_rules([BLOCK_MISSILES])
    try:
        yield stack
    finally:
        stack.stop()


def create_key(client: Client, name: str = "test key") -> str:
    """Create a key on the settings page, as a person does; the page shows it once."""
    client.get("/settings/api-keys/")
    data = urllib.parse.urlencode({"name": name, "csrfmiddlewaretoken": client.cookie("csrftoken")}).encode()
    request = urllib.request.Request(client.stack.base_url + "/settings/api-keys/", data=data)
    with client.opener.open(request, timeout=10) as response:
        page = response.read().decode()
    match = re.search(r'id="new-key-secret">([^<]+)<', page)
    assert match, page
    return match.group(1)


@pytest.fixture
def person(api_stack: Stack) -> Client:
    return Client(api_stack).signup()


@pytest.fixture
def api(api_stack: Stack, person: Client) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=api_stack.base_url + "/v1", api_key=create_key(person), max_retries=0, timeout=60
    )


def count(text: str) -> int:
    return len(sentencepiece_processor().encode(text))


# --- keys -------------------------------------------------------------------------


def test_key_is_shown_once_listed_by_prefix_and_revocable(api_stack: Stack, person: Client) -> None:
    secret = create_key(person, "laptop")
    _, page = person.get("/settings/api-keys/")
    assert "laptop" in page and secret[:12] in page and secret not in page
    client = openai.OpenAI(base_url=api_stack.base_url + "/v1", api_key=secret, max_retries=0)
    assert [m.id for m in client.models.list().data] == ["scripted"]
    key_id = re.search(r"/settings/api-keys/(\d+)/revoke/", page).group(1)
    person.post(f"/settings/api-keys/{key_id}/revoke/", {})
    with pytest.raises(openai.AuthenticationError) as refused:
        client.models.list()
    assert refused.value.status_code == 401 and refused.value.code == "invalid_api_key"


def test_missing_or_wrong_key_is_401(api_stack: Stack) -> None:
    for key in ("", "mck-not-a-real-key", "sk-something"):
        client = openai.OpenAI(base_url=api_stack.base_url + "/v1", api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(
                model="scripted", messages=[{"role": "user", "content": "greet me"}]
            )


# --- chat completions ---------------------------------------------------------------


def test_chat_completion_whole(api_stack: Stack, person: Client, api: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "greet me"},
    ]
    answer = api.chat.completions.create(model="scripted", messages=messages)
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.content == HELLO
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens == count(HELLO)
    assert answer.usage.prompt_tokens > count("Be brief. hi Hi. greet me")
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    # Stored (API_STORE_CONVERSATIONS defaults on): in the person's list, with every turn.
    _, listing = person.get("/c/")
    conversation_id = re.search(r'href="/c/([0-9a-f-]{36})/"', listing).group(1)
    stored = api_stack.stored_messages(conversation_id)
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "hi"),
        ("assistant", "Hi."),
        ("user", "greet me"),
        ("assistant", HELLO),
    ]


def test_chat_completion_streamed_with_usage(api: openai.OpenAI) -> None:
    chunks = list(
        api.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "greet me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == HELLO
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == count(HELLO)


def test_stop_sequence_and_length(api_stack: Stack, person: Client, api: openai.OpenAI) -> None:
    streamed = api.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "greet me"}], stop="How", stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == HELLO[: HELLO.index("How")]
    answer = api.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "greet me"}], stop=["help", "zzz"]
    )
    assert answer.choices[0].message.content == HELLO[: HELLO.index("help")]
    assert answer.choices[0].finish_reason == "stop"
    # The worker cuts it there: the stored reply is what the client got, and complete.
    _, listing = person.get("/c/")
    newest = re.search(r'href="/c/([0-9a-f-]{36})/"', listing).group(1)
    reply = api_stack.stored_messages(newest)[-1]
    assert (reply["content"], reply["status"]) == (HELLO[: HELLO.index("help")], "complete")
    short = api.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "greet me"}], max_tokens=3
    )
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3


def test_wire_format_is_server_sent_events(api_stack: Stack, api: openai.OpenAI) -> None:
    body = json.dumps(
        {"model": "scripted", "messages": [{"role": "user", "content": "greet me"}], "stream": True}
    )
    request = urllib.request.Request(
        api_stack.base_url + "/v1/chat/completions",
        data=body.encode(),
        headers={"Authorization": f"Bearer {api.api_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert len({p["id"] for p in payloads}) == 1 and payloads[0]["id"].startswith("chatcmpl-")
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in payloads) == HELLO
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop" and "usage" not in payloads[-1]


# --- raw completions and models --------------------------------------------------------


def test_raw_completion_applies_no_template(api: openai.OpenAI) -> None:
    prompt = "<s>[INST] greet me [/INST]"
    answer = api.completions.create(model="scripted", prompt=prompt)
    assert answer.object == "text_completion"
    assert answer.choices[0].text == HELLO
    # BOS and the prompt as text: nothing of the chat template was added.
    assert answer.usage.prompt_tokens == 1 + count("[INST] greet me [/INST]")
    streamed = api.completions.create(model="scripted", prompt="greet me", stream=True)
    assert "".join(c.choices[0].text for c in streamed) == HELLO


# --- errors --------------------------------------------------------------------------------


def test_bad_requests_get_400_in_openai_format(api: openai.OpenAI) -> None:
    user = [{"role": "user", "content": "greet me"}]
    cases = [
        ({"n": 2}, "n"),
        ({"extra_body": {"logit_bias": {"1": 5}}}, "logit_bias"),
        ({"temperature": 9}, "temperature"),
        ({"extra_body": {"stop": 5}}, "stop"),
    ]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            api.chat.completions.create(model="scripted", messages=user, **extra)
        assert refused.value.status_code == 400 and refused.value.param == param, extra
    for messages in (
        [],
        [{"role": "assistant", "content": "x"}],
        [{"role": "tool", "content": "x"}],
        [{"role": "user", "content": ""}],
    ):
        with pytest.raises(openai.BadRequestError):
            api.chat.completions.create(model="scripted", messages=messages)
    with pytest.raises(openai.NotFoundError) as unknown:
        api.chat.completions.create(model="gpt-4o", messages=user)
    assert unknown.value.code == "model_not_found"


def test_moderation_blocks_input_and_stream(api_stack: Stack, api: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as blocked:
        api.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "launch the missiles now"}]
        )
    assert blocked.value.code == "content_filter"
    streamed = list(
        api.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "the plan"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed)
    assert "missiles" not in text and PLAN.startswith(text)
    assert streamed[-1].choices[0].finish_reason == "content_filter"
    # The events keep which key made them.
    code = (
        "from webapp.moderation.models import ModerationEvent as E; "
        "print(sorted(set(E.objects.filter(message__conversation__api_link__api_key__prefix="
        f"'{api.api_key[:12]}').values_list('stage', flat=True))))"
    )
    assert api_stack.manage("shell", "-c", code).strip().splitlines()[-1] == "['input', 'stream']"


def test_quota_exceeded_is_429_with_retry_after(api_stack: Stack, person: Client, api: openai.OpenAI) -> None:
    user_id = json.loads(
        api_stack.manage(
            "shell",
            "-c",
            f"from django.contrib.auth.models import User; print(User.objects.get(api_keys__prefix='{api.api_key[:12]}').pk)",
        )
        .strip()
        .splitlines()[-1]
    )
    day = time.strftime("%Y%m%d", time.gmtime())
    redis.Redis.from_url(api_stack.env.get("REDIS_URL", "redis://127.0.0.1:6379/0")).set(
        f"{api_stack.env['REDIS_PREFIX']}:quota:tokens:{user_id}:{day}", api_stack.env["QUOTA_TOKENS_PER_DAY"]
    )
    with pytest.raises(openai.RateLimitError) as limited:
        api.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "greet me"}])
    assert limited.value.status_code == 429 and limited.value.code == "insufficient_quota"
    assert 0 < int(limited.value.response.headers["Retry-After"]) <= 86400


# --- disconnect -------------------------------------------------------------------------------


def test_client_gone_mid_stream_stops_the_reply(api_stack: Stack, person: Client, api: openai.OpenAI) -> None:
    body = json.dumps(
        {
            "model": "scripted",
            "messages": [{"role": "user", "content": "go long"}],
            "stream": True,
            "max_tokens": 2000,
        }
    ).encode()
    with socket.create_connection(("127.0.0.1", api_stack.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {api.api_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b'"content": "word' not in received:
            received += sock.recv(4096)
    # The socket is closed: the reply must end `stopped`, well short of its 2000 tokens.
    _, listing = person.get("/c/")
    conversation_id = re.search(r'href="/c/([0-9a-f-]{36})/"', listing).group(1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = api_stack.stored_messages(conversation_id)[-1]
        if reply["status"] not in ("queued", "streaming"):
            break
        time.sleep(0.5)
    assert reply["status"] == "stopped"
    assert 0 < reply["completion_tokens"] < count(LONG) // 2
