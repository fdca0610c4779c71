"""bench/stack_chats.py: a chat's rounds, and what counts as a stray, against a scripted socket."""

from __future__ import annotations

import json

import pytest

from bench.stack_chats import Reply, all_live_rate, chat


class ScriptedSocket:
    """A websocket whose server answers each send with the next scripted list of events."""

    def __init__(self, answers: list[list[dict]]) -> None:
        self.answers = answers
        self.sent: list[str] = []
        self.inbox: list[dict] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)
        self.inbox += self.answers[len(self.sent) - 1]

    async def recv(self) -> str:
        if not self.inbox:
            raise TimeoutError  # as the client's wait_for would, with nothing more coming
        return json.dumps(self.inbox.pop(0))


def reply_events(message_id: str, words: list[str], status: str = "complete") -> list[dict]:
    tokens = [
        {"type": "token", "message_id": message_id, "seq": seq, "text": word}
        for seq, word in enumerate(words, start=1)
    ]
    stats = {"completion_tokens": len(words), "queue_ms": 1.0, "ttft_ms": 2.0}
    done = {
        "type": "done",
        "message_id": message_id,
        "status": status,
        "content": "".join(words),
        "stats": stats,
    }
    return [{"type": "start", "message_id": message_id}, *tokens, done]


async def test_each_round_is_sent_when_the_reply_before_it_is_done() -> None:
    socket = ScriptedSocket([reply_events("a", ["Hel", "lo"]), reply_events("b", ["Again"])])
    replies = await chat(socket, "Hi", max_tokens=lambda n: 10 + n, delay_s=0, rounds=2, think_s=0)
    assert [json.loads(text) for text in socket.sent] == [
        {"type": "send", "content": "Hi", "params": {"max_tokens": 10}},
        {"type": "send", "content": "Hi", "params": {"max_tokens": 11}},
    ]
    assert [r.max_tokens for r in replies] == [10, 11]
    assert [(r.round, r.message_id, r.streamed, r.content) for r in replies] == [
        (0, "a", "Hello", "Hello"),
        (1, "b", "Again", "Again"),
    ]
    assert all(r.bad_seq == 0 and r.strays == 0 and r.done is not None for r in replies)
    assert replies[0].done <= replies[1].sent


async def test_an_earlier_replys_token_or_done_in_a_later_round_is_a_stray() -> None:
    late = [{"type": "token", "message_id": "a", "seq": 3, "text": "!"}, reply_events("a", ["x"])[-1]]
    socket = ScriptedSocket([reply_events("a", ["Hi"]), late + reply_events("b", ["Yes"])])
    replies = await chat(socket, "Hi", max_tokens=lambda n: 8, delay_s=0, rounds=2, think_s=0)
    assert [r.strays for r in replies] == [0, 2]
    assert replies[1].streamed == "Yes"


async def test_a_lost_reply_ends_its_chat() -> None:
    socket = ScriptedSocket([reply_events("a", ["Hi"])[:-1], reply_events("b", ["never"])])
    replies = await chat(socket, "Hi", max_tokens=lambda n: 8, delay_s=0, rounds=3, think_s=0)
    assert len(socket.sent) == 1 and len(replies) == 1
    assert replies[0].done is None and replies[0].streamed == "Hi"


@pytest.mark.parametrize("seqs", [[1, 3], [2, 3], [1, 1]])
async def test_a_seq_that_does_not_rise_by_one_is_counted(seqs: list[int]) -> None:
    events = reply_events("a", ["x", "y"])
    for event, seq in zip(events[1:3], seqs, strict=True):
        event["seq"] = seq
    replies = await chat(
        ScriptedSocket([events]), "Hi", max_tokens=lambda n: 8, delay_s=0, rounds=1, think_s=0
    )
    assert replies[0].bad_seq >= 1


def ended(sent: float, first: float, done: float, tokens: int) -> Reply:
    return Reply(sent=sent, first=first, done=done, completion_tokens=tokens)


def test_the_all_live_rate_ends_at_the_first_chats_last_done() -> None:
    # Chat a: 100 tokens streamed from 0.1 to 1.0, then 100 from 1.1 to 2.0; chat b: 300 from 0.1 to 3.0.
    chats = [
        [ended(0.0, 0.1, 1.0, 100), ended(1.0, 1.1, 2.0, 100)],
        [ended(0.0, 0.1, 3.0, 300)],
    ]
    # Until 2.0: all 200 of a's, and b's share of its 300 streamed before then (1.9 of 2.9 s).
    assert all_live_rate(chats) == pytest.approx((200 + 300 * 1.9 / 2.9) / 2.0)


def test_no_all_live_rate_when_a_chat_lost_its_reply() -> None:
    lost = Reply(sent=0.0, first=0.1)
    assert all_live_rate([[ended(0.0, 0.1, 1.0, 10)], [lost]]) is None
