"""The default database under a small team: 64 people send at the same moment, on SQLite.

Real Daphne, a real Celery worker with 64 threads (every claim and every
finish racing too) and the real Redis, on the SQLite file `make run` uses
by default. Each person has a conversation of their own; all the sends go
out together. Every reply must come back `complete`, every socket must stay
open (no 1011) and the database must hold every message, with no
`database is locked` anywhere in the logs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_reply_stream import collect_reply, next_event
from tests.support.stack import Client, Stack

pytestmark = pytest.mark.integration

PEOPLE = 64
TRIGGER = "all at once"
REPLY = "Everyone gets an answer, even when the whole team asks at the same moment."


@pytest.fixture(scope="module")
def sqlite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        tmp=Path(tmp_path_factory.mktemp("sqlite-stack")),
        database="sqlite",
        extra_env={
            "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
            "SCRIPTED_REPLIES": json.dumps({TRIGGER: REPLY}),
            "SCRIPTED_DELAY_S": "0.01",
            # One worker thread per sender: the claims and the finishes race as well.
            "MAX_BATCH": str(PEOPLE),
        },
    ).start()
    try:
        yield running
    finally:
        running.stop()


def sign_up(stack: Stack) -> tuple[Client, str]:
    client = Client(stack).signup()
    return client, client.new_conversation()


async def send_together(people: list[tuple[Client, str]]) -> list[tuple[str, list[dict], dict]]:
    """Open every socket first, then send on all of them at once; each waits for its `done`."""
    sockets = [await client.connect(conversation).__aenter__() for client, conversation in people]
    go = asyncio.Event()

    async def converse(ws, number: int) -> tuple[str, list[dict], dict]:
        await go.wait()
        await ws.send(json.dumps({"type": "send", "content": f"Person {number} asks: {TRIGGER}?"}))
        echoed = await next_event(ws, "message")
        tokens, done = await collect_reply(ws)
        return echoed["message"]["content"], tokens, done

    try:
        conversations = [asyncio.create_task(converse(ws, n)) for n, ws in enumerate(sockets)]
        await asyncio.sleep(0)  # every task is waiting on the event before it fires
        go.set()
        results = await asyncio.gather(*conversations)
        # Still open after the reply: nothing closed a socket with 1011.
        for ws in sockets:
            await ws.ping()
        return results
    finally:
        for ws in sockets:
            await ws.close()


def stored_rows(stack: Stack, conversations: list[str]) -> dict[str, list[tuple[str, str, str]]]:
    """Every message of these conversations, as (role, status, content), read by a separate process."""
    code = (
        "import json; from webapp.chat.models import Message; rows = {}\n"
        f"for m in Message.objects.filter(conversation_id__in={conversations!r}).order_by('created_at'):\n"
        "    rows.setdefault(str(m.conversation_id), []).append((m.role, m.status, m.content))\n"
        "print(json.dumps(rows))"
    )
    rows = json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1])
    return {conversation: [tuple(row) for row in messages] for conversation, messages in rows.items()}


def test_64_people_sending_at_once_on_sqlite_all_get_their_replies(sqlite_stack: Stack) -> None:
    assert sqlite_stack.database_url.startswith("sqlite:")
    # Sign-ups overlap too, two at a time: more only queue for the CPU (password hashing) and time out.
    with ThreadPoolExecutor(max_workers=2) as pool:
        people = list(pool.map(lambda _: sign_up(sqlite_stack), range(PEOPLE)))
    assert len({client.cookie("sessionid") for client, _ in people}) == PEOPLE

    results = asyncio.run(send_together(people))

    for number, (echoed, tokens, done) in enumerate(results):
        assert echoed == f"Person {number} asks: {TRIGGER}?"
        assert done["status"] == "complete", done
        assert done["content"] == REPLY
        assert "".join(t["text"] for t in tokens) == REPLY
    conversations = [conversation for _, conversation in people]
    stored = stored_rows(sqlite_stack, conversations)
    for number, conversation in enumerate(conversations):
        assert stored[conversation] == [
            ("user", "complete", f"Person {number} asks: {TRIGGER}?"),
            ("assistant", "complete", REPLY),
        ]
    logs = "".join(log.read_text(errors="replace") for log in sqlite_stack.tmp.glob("*.log"))
    assert "database is locked" not in logs
    assert "Traceback" not in logs
