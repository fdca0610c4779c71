"""The reply loop over the scripted batched engine: many replies from one thread, one publish per step."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from inference.chat_template import sentencepiece_processor
from inference.detokenize import decode
from inference.moderation.base import Action, ModerationContext
from inference.moderation.chain import HookPolicy, ModerationChain
from inference.moderation.pii import PiiHook
from inference.moderation.rules import Rule, RulesHook
from inference.params import SamplingParams
from inference.reply_loop import Emission, ReplyLoop
from inference.steps import Request, StepOutput
from inference.streaming import ReplyModeration, ReplyOutcome, ReplyStream, StreamSettings
from tests.support.scripted_engine import ScriptedEngine

SETTINGS = StreamSettings(context_limit=32768, coalesce_ms=30, coalesce_tokens=16)
LONG = " ".join(f"Sentence number {i} of a long scripted reply." for i in range(40))


class Recorder:
    """The loop's `publish`: keeps every call, so a test can read what each step sent."""

    def __init__(self) -> None:
        self.calls: list[list[Emission]] = []
        self.lock = threading.Lock()
        self.fail = False

    def __call__(self, emissions: Sequence[Emission]) -> None:
        if self.fail:
            raise ConnectionError("Redis went away")
        with self.lock:
            self.calls.append(list(emissions))

    def of(self, key: str) -> list[Emission]:
        with self.lock:
            return [e for call in self.calls for e in call if e.key == key]


def open_reply(content: str, *, chain: ModerationChain | None = None, **kwargs) -> ReplyStream:
    reply = ReplyStream.open(
        messages=[{"role": "user", "content": content}],
        system_prompt=None,
        params=kwargs.pop("params", SamplingParams(max_tokens=10_000)),
        settings=SETTINGS,
        moderation=ReplyModeration(chain, ModerationContext("c", content, "u"), holdback_chars=32)
        if chain
        else None,
        started=time.monotonic(),
        **kwargs,
    )
    assert isinstance(reply, ReplyStream)
    return reply


class HeldEngine(ScriptedEngine):
    """Takes its first step only once every expected request has arrived: all start together."""

    def __init__(self, *args, expected: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.expected = expected

    def _run(self) -> None:
        deadline = time.monotonic() + 30
        while len(self._waiting) < self.expected and time.monotonic() < deadline:
            time.sleep(0.005)
        super()._run()


def run_all(loop: ReplyLoop, replies: dict[str, ReplyStream]) -> dict[str, ReplyOutcome]:
    outcomes: dict[str, ReplyOutcome] = {}

    def one(key: str, reply: ReplyStream) -> None:
        outcomes[key] = loop.run(reply, key=key, channel=f"conversation-{key}")

    threads = [threading.Thread(target=one, args=item) for item in replies.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def assert_invariant(emitted: list[Emission], outcome: ReplyOutcome) -> None:
    assert [e.seq for e in emitted] == list(range(1, len(emitted) + 1))
    assert "".join(e.text for e in emitted) == outcome.content


def test_many_replies_stream_from_one_loop_each_whole_and_in_order() -> None:
    replies = {f"<r{i}>": f"trigger{i} " + LONG[: 200 + 37 * i] for i in range(12)}
    engine = HeldEngine(replies, delay_s=0.002, max_batch=16, expected=len(replies))
    publish = Recorder()
    loop = ReplyLoop(engine, publish=publish)
    outcomes = run_all(loop, {key: open_reply(key) for key in replies})
    assert sorted(outcomes) == sorted(replies)
    for key, text in replies.items():
        outcome = outcomes[key]
        assert outcome.status == "complete"
        assert outcome.content == decode(sentencepiece_processor().encode(text)) == text
        assert outcome.completion_tokens == len(sentencepiece_processor().encode(text))
        assert_invariant(publish.of(key), outcome)
        assert publish.of(key)[0].channel == f"conversation-{key}"
    # One call per step carries the events of many replies.
    assert max(len({e.key for e in call}) for call in publish.calls) >= 6
    assert loop.keys() == []


def test_a_stop_takes_effect_within_one_step() -> None:
    engine = ScriptedEngine({"": LONG}, delay_s=0.01, max_batch=4)
    publish = Recorder()
    loop = ReplyLoop(engine, publish=publish)
    result: list[ReplyOutcome] = []
    worker = threading.Thread(target=lambda: result.append(loop.run(open_reply("go"), key="k", channel="c")))
    worker.start()
    deadline = time.monotonic() + 30
    while not publish.of("k") and time.monotonic() < deadline:
        time.sleep(0.001)
    request = engine._batch[0]
    assert loop.stop("k") is True
    at_stop = request.generated
    worker.join(timeout=30)
    (outcome,) = result
    assert outcome.status == "stopped"
    assert at_stop <= outcome.completion_tokens <= at_stop + 1
    assert_invariant(publish.of("k"), outcome)
    assert loop.stop("k") is False  # gone from the loop


def test_a_stop_before_the_engine_has_the_request_is_kept() -> None:
    class Slow(ScriptedEngine):
        def submit(self, *args, **kwargs) -> Request:
            time.sleep(0.2)
            return super().submit(*args, **kwargs)

    loop = ReplyLoop(Slow({"": LONG}, delay_s=0.001, max_batch=4), publish=Recorder())
    result: list[ReplyOutcome] = []
    worker = threading.Thread(target=lambda: result.append(loop.run(open_reply("go"), key="k", channel="c")))
    worker.start()
    deadline = time.monotonic() + 5
    while not loop.stop("k") and time.monotonic() < deadline:
        time.sleep(0.001)
    worker.join(timeout=30)
    assert result[0].status == "stopped" and result[0].completion_tokens <= 1


def test_the_stop_poll_catches_a_stop_whose_push_was_lost() -> None:
    asked: list[list[str]] = []

    def poll(keys: Sequence[str]) -> set[str]:
        asked.append(sorted(keys))
        return {"k"}

    loop = ReplyLoop(
        ScriptedEngine({"": LONG}, delay_s=0.01, max_batch=4),
        publish=Recorder(),
        stop_poll=poll,
        stop_poll_s=0.05,
    )
    outcome = loop.run(open_reply("go"), key="k", channel="c")
    assert outcome.status == "stopped" and outcome.completion_tokens < len(
        sentencepiece_processor().encode(LONG)
    )
    assert ["k"] in asked


def test_a_blocked_phrase_split_across_steps_never_reaches_publish_and_neighbours_go_on() -> None:
    chain = ModerationChain(
        [
            (
                RulesHook([Rule("violence_and_threats", Action.BLOCK, "phrase", "detonate the device")]),
                HookPolicy(),
            ),
            (PiiHook(), HookPolicy()),
        ]
    )
    bad = "Here is how it goes. First we detonate the device and then we leave. " + LONG[:300]
    # The same phrase's words land in different replies: no reply holds the phrase, none is blocked.
    split_a, split_b = "We will detonate. " + LONG[:200], "the device is fine. " + LONG[:200]
    engine = HeldEngine(
        {"bad": bad, "alpha": split_a, "beta": split_b}, delay_s=0.002, max_batch=8, expected=3
    )
    publish = Recorder()
    loop = ReplyLoop(engine, publish=publish)
    replies = {key: open_reply(key, chain=chain) for key in ("bad", "alpha", "beta")}
    outcomes = run_all(loop, replies)
    assert outcomes["bad"].status == "blocked"
    sent = "".join(e.text for e in publish.of("bad"))
    assert "detonate" not in sent and "device" not in sent
    assert sent == outcomes["bad"].content and "detonate the device" in outcomes["bad"].original
    for key, text in (("alpha", split_a), ("beta", split_b)):
        assert outcomes[key].status == "complete" and outcomes[key].content == text
        assert_invariant(publish.of(key), outcomes[key])
    # The blocked reply's engine row was dropped at once, not decoded to its end.
    assert outcomes["bad"].completion_tokens < len(sentencepiece_processor().encode(bad))


def test_redaction_and_stop_strings_hold_across_steps() -> None:
    text = "Write to jane.doe@example.com today. END and more text after the stop."
    engine = ScriptedEngine({"": text}, delay_s=0.001, max_batch=4)
    publish = Recorder()
    loop = ReplyLoop(engine, publish=publish)
    chain = ModerationChain([(PiiHook(), HookPolicy())])
    outcome = loop.run(open_reply("go", chain=chain, stop=["END"]), key="k", channel="c")
    assert outcome.status == "complete"
    assert "jane.doe@example.com" not in outcome.content and outcome.content.endswith("today. ")
    assert_invariant(publish.of("k"), outcome)


def test_an_engine_failure_fails_the_reply_with_its_text_so_far() -> None:
    class Failing(ScriptedEngine):
        def _run(self) -> None:  # one good step, then a failed one
            time.sleep(0.01)
            out = StepOutput()
            for request in list(self._waiting):
                out.add(request, self._scripts[request][0])
            out.deliver()
            for request in list(self._waiting):
                out.end(request, RuntimeError("CUDA out of memory"))
            out.deliver()

    publish = Recorder()
    loop = ReplyLoop(Failing({"": LONG}, delay_s=0.0, max_batch=4), publish=publish)
    outcome = loop.run(open_reply("go"), key="k", channel="c")
    assert (
        outcome.status == "failed" and outcome.error == "Generation failed: RuntimeError: CUDA out of memory"
    )
    assert outcome.completion_tokens == 1
    assert_invariant(publish.of("k"), outcome)


def test_a_publish_that_fails_fails_its_replies_and_the_loop_serves_the_next() -> None:
    engine = ScriptedEngine({"": LONG[:400]}, delay_s=0.002, max_batch=4)
    publish = Recorder()
    publish.fail = True
    loop = ReplyLoop(engine, publish=publish)
    outcome = loop.run(open_reply("go"), key="k1", channel="c")
    assert outcome.status == "failed" and outcome.error == "The worker failed: ConnectionError"
    publish.fail = False
    again = loop.run(open_reply("go"), key="k2", channel="c")
    assert again.status == "complete" and again.content == LONG[:400]


def test_a_prompt_the_engine_refuses_fails_the_reply() -> None:
    loop = ReplyLoop(ScriptedEngine({}, delay_s=0.0, max_batch=1), publish=Recorder())
    reply = open_reply("go")
    reply.prompt_ids = [40_000]
    outcome = loop.run(reply, key="k", channel="c")
    assert outcome.status == "failed" and "prompt_ids must lie in" in outcome.error


@pytest.mark.parametrize("rows", [1, 24])
def test_the_scripted_engine_steps_every_live_row_together(rows: int) -> None:
    engine = HeldEngine({"": "one two three four five six"}, delay_s=0.001, max_batch=32, expected=rows)
    steps: list[list[tuple[int, ...]]] = []
    done = threading.Event()
    ended = [0]

    def sink(batch: list) -> None:
        steps.append([row.token_ids for row in batch])
        ended[0] += sum(row.finished for row in batch)
        if ended[0] == rows:
            done.set()

    requests = [
        engine.submit([1, 733, 16289, 28793], SamplingParams(max_tokens=100), sink=sink) for _ in range(rows)
    ]
    assert done.wait(30)
    expected = sentencepiece_processor().encode("one two three four five six")
    # Each step hands every row its next id, in one call; all rows were admitted together or nearly.
    assert all(len(step) <= rows for step in steps)
    assert max(len(step) for step in steps) == rows
    assert all(r.generated == len(expected) for r in requests)


@pytest.mark.parametrize(("host_ms", "every_ms"), [(4, 10), (15, 15)])
def test_the_scripted_engine_keeps_its_step_cadence_whatever_the_host_spends(
    host_ms: int, every_ms: int
) -> None:
    """A step every SCRIPTED_DELAY_S, as a GPU runs one step ahead of its host: the host's work
    between steps (here 4 ms of a 10 ms step) is not added to the step; more than a step's
    worth (15 ms) and the engine waits for the host, never bursting to catch up."""
    now = [100.0]
    ends: list[float] = []
    done = threading.Event()

    def sleep(seconds: float) -> None:
        assert seconds >= 0
        now[0] += seconds

    def sink(batch: list) -> None:
        ends.append(now[0])
        now[0] += host_ms / 1000  # the host's work on this step's ids
        if any(row.finished for row in batch):
            done.set()

    engine = ScriptedEngine({"": "one two three four five six"}, 0.010, 4, clock=lambda: now[0], sleep=sleep)
    engine.submit([1, 733, 16289, 28793], SamplingParams(max_tokens=100), sink=sink)
    assert done.wait(30)
    gaps = [round((b - a) * 1000, 6) for a, b in zip(ends, ends[1:], strict=False)]
    assert len(gaps) >= 5 and gaps == [every_ms] * len(gaps)
