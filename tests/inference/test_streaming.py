"""The reply loop over a scripted engine: coalescing, stop, failure, context, the text invariant."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from inference.chat_template import BOS_ID, encode_chat, sentencepiece_processor
from inference.detokenize import decode
from inference.params import SamplingParams
from inference.streaming import ReplyOutcome, StreamSettings, stream_reply

# "Hello world" plus an emoji split over four byte-fallback pieces (🙂 = F0 9F 99 82; <0xNN> is id 3 + NN).
HELLO = [*sentencepiece_processor().encode("Hello world"), 3 + 0xF0, 3 + 0x9F, 3 + 0x99, 3 + 0x82]


class ScriptedEngine:
    """Yields a fixed list of ids, advancing a fake clock by `step` per id."""

    def __init__(self, ids: list[int], clock: FakeClock, step: float = 0.005, fail_after: int | None = None):
        self.ids, self.clock, self.step, self.fail_after = ids, clock, step, fail_after
        self.prompts: list[list[int]] = []

    def generate(
        self, prompt_ids: list[int], params: SamplingParams, *, should_stop: Callable[[], bool]
    ) -> Iterator[int]:
        self.prompts.append(prompt_ids)
        for index, token_id in enumerate(self.ids[: params.max_tokens]):
            if should_stop():
                return
            if self.fail_after is not None and index == self.fail_after:
                raise RuntimeError("CUDA out of memory")
            self.clock.now += self.step
            yield token_id


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(engine: ScriptedEngine, clock: FakeClock, *, stop: Callable[[], bool] = lambda: False, **kwargs):
    emitted: list[tuple[int, str]] = []
    outcome = stream_reply(
        engine=engine,
        messages=kwargs.pop("messages", [{"role": "user", "content": "Hi"}]),
        system_prompt=kwargs.pop("system_prompt", None),
        params=kwargs.pop("params", SamplingParams(max_tokens=10_000)),
        settings=kwargs.pop(
            "settings", StreamSettings(context_limit=32768, coalesce_ms=30, coalesce_tokens=16)
        ),
        emit=lambda seq, text: emitted.append((seq, text)),
        stop_requested=stop,
        clock=clock,
        **kwargs,
    )
    return outcome, emitted


def assert_invariant(outcome: ReplyOutcome, emitted: list[tuple[int, str]], ids: list[int]) -> None:
    assert [seq for seq, _ in emitted] == list(range(1, len(emitted) + 1))
    assert "".join(text for _, text in emitted) == outcome.content == decode(ids)


def test_complete_reply_text_equals_the_decoding_of_its_ids() -> None:
    clock = FakeClock()
    outcome, emitted = run(ScriptedEngine(HELLO, clock), clock)
    assert outcome.status == "complete" and outcome.completion_tokens == len(HELLO)
    assert outcome.content.endswith("🙂")
    assert_invariant(outcome, emitted, HELLO)


def test_a_nul_byte_from_the_model_is_streamed_and_stored_as_a_replacement_character() -> None:
    # <0x00> (id 3) decodes to NUL, which PostgreSQL's text columns refuse: the reply failed whole.
    ids = [*sentencepiece_processor().encode("a"), 3, *sentencepiece_processor().encode("b")]
    clock = FakeClock()
    outcome, emitted = run(ScriptedEngine(ids, clock), clock)
    assert outcome.status == "complete" and "\x00" not in outcome.content
    assert outcome.content == decode(ids).replace("\x00", "\ufffd")
    assert "".join(text for _, text in emitted) == outcome.content


def test_deltas_are_coalesced_by_count() -> None:
    clock = FakeClock()
    ids = list(range(300, 400))
    # No time passes: only the token count can trigger a flush.
    outcome, emitted = run(ScriptedEngine(ids, clock, step=0.0), clock)
    # The first token alone, then 16 at a time, then the rest at the end.
    assert len(emitted) == 1 + 99 // 16 + 1
    assert emitted[0][1] == decode(ids[:1])
    assert_invariant(outcome, emitted, ids)


def test_deltas_are_coalesced_by_time() -> None:
    clock = FakeClock()
    ids = list(range(300, 340))
    # 10 ms a token and a 30 ms interval: about one event every three tokens.
    outcome, emitted = run(ScriptedEngine(ids, clock, step=0.010), clock)
    assert 10 <= len(emitted) <= 16
    assert_invariant(outcome, emitted, ids)


def test_stop_takes_effect_within_one_interval() -> None:
    clock = FakeClock()
    ids = list(range(300, 1300))
    stop_at = clock.now + 0.5
    outcome, emitted = run(ScriptedEngine(ids, clock, step=0.010), clock, stop=lambda: clock.now >= stop_at)
    assert outcome.status == "stopped"
    # 0.5 s at 10 ms a token is 50 tokens; a 30 ms poll allows a few more.
    assert 50 <= outcome.completion_tokens <= 50 + 4
    assert_invariant(outcome, emitted, ids[: outcome.completion_tokens])


def test_a_stop_before_the_start_generates_nothing() -> None:
    clock = FakeClock()
    engine = ScriptedEngine(HELLO, clock)
    outcome, emitted = run(engine, clock, stop=lambda: True)
    assert outcome.status == "stopped" and outcome.content == "" and not emitted and not engine.prompts


def test_a_failing_engine_ends_failed_with_a_readable_error_and_its_text_so_far() -> None:
    clock = FakeClock()
    ids = list(range(300, 340))
    outcome, emitted = run(ScriptedEngine(ids, clock, fail_after=20), clock)
    assert outcome.status == "failed"
    assert outcome.error == "Generation failed: RuntimeError: CUDA out of memory"
    assert_invariant(outcome, emitted, ids[:20])


def test_max_tokens_and_stats() -> None:
    clock = FakeClock()
    outcome, _ = run(
        ScriptedEngine(list(range(300, 400)), clock, step=0.010), clock, params=SamplingParams(max_tokens=11)
    )
    assert outcome.completion_tokens == 11
    assert outcome.ttft_ms == pytest.approx(10.0)
    assert outcome.tokens_per_s == pytest.approx(100.0)
    assert outcome.prompt_tokens == len(encode_chat([{"role": "user", "content": "Hi"}]))


def test_the_prompt_is_the_fitted_chat_template() -> None:
    clock = FakeClock()
    engine = ScriptedEngine(HELLO, clock)
    messages = [
        {"role": "user", "content": "old " * 50},
        {"role": "assistant", "content": "reply " * 50},
        {"role": "user", "content": "new question"},
    ]
    run(
        engine,
        clock,
        messages=messages,
        system_prompt="Be brief.",
        settings=StreamSettings(context_limit=80),
        params=SamplingParams(max_tokens=20),
    )
    assert engine.prompts == [encode_chat(messages[-1:], system_prompt="Be brief.")]


def test_a_context_overflow_fails_the_reply_without_generating() -> None:
    clock = FakeClock()
    engine = ScriptedEngine(HELLO, clock)
    outcome, emitted = run(
        engine,
        clock,
        messages=[{"role": "user", "content": "word " * 200}],
        settings=StreamSettings(context_limit=64),
        params=SamplingParams(max_tokens=10),
    )
    assert outcome.status == "failed" and "64" in outcome.error
    assert not emitted and not engine.prompts


def test_a_raw_prompt_is_its_text_after_bos_with_no_template() -> None:
    clock = FakeClock()
    engine = ScriptedEngine(HELLO, clock)
    prompt = "<s>[INST] Hi [/INST] Sure</s>"
    outcome, _ = run(
        engine, clock, messages=[{"role": "user", "content": prompt}], system_prompt="Ignored", raw=True
    )
    # The leading <s> is BOS; the rest, </s> included, is text.
    assert engine.prompts == [[BOS_ID, *sentencepiece_processor().encode("[INST] Hi [/INST] Sure</s>")]]
    assert outcome.status == "complete" and outcome.prompt_tokens == len(engine.prompts[0])


def test_a_raw_prompt_too_long_fails_without_generating() -> None:
    clock = FakeClock()
    engine = ScriptedEngine(HELLO, clock)
    outcome, _ = run(
        engine,
        clock,
        messages=[{"role": "user", "content": "word " * 200}],
        settings=StreamSettings(context_limit=64),
        params=SamplingParams(max_tokens=10),
        raw=True,
    )
    assert outcome.status == "failed" and not engine.prompts


def test_stop_strings_end_the_reply_complete_before_the_first() -> None:
    clock = FakeClock()
    ids = sentencepiece_processor().encode("One two three. Four five six.")
    engine = ScriptedEngine(ids, clock)
    emitted: list[tuple[int, str]] = []
    outcome = stream_reply(
        engine=engine,
        messages=[{"role": "user", "content": "Count"}],
        system_prompt=None,
        params=SamplingParams(max_tokens=100),
        settings=StreamSettings(context_limit=32768),
        emit=lambda seq, text: emitted.append((seq, text)),
        stop_requested=lambda: False,
        clock=clock,
        stop=["Four", "nowhere"],
    )
    assert outcome.status == "complete" and outcome.content == "One two three. "
    assert "".join(text for _, text in emitted) == outcome.content
    assert outcome.completion_tokens < len(ids)  # the engine was stopped there
