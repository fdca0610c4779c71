"""The chain: order, early stop, budgets, failures, from_paths."""

from __future__ import annotations

import threading
import time

import pytest

from inference.moderation.base import ALLOW, Action, ModerationContext, Stage, Verdict
from inference.moderation.chain import HookPolicy, ModerationChain, decide
from inference.moderation.pii import PiiHook
from inference.moderation.rules import Rule, RulesHook

CTX = ModerationContext("c1", "m1", "u1", ({"role": "user", "content": "hi"},))


class Fixed:
    def __init__(self, name: str, action: Action, calls: list[str]) -> None:
        self.name, self.action, self.calls = name, action, calls

    def check_stream(self, ctx: ModerationContext, text: str) -> Verdict:
        self.calls.append(self.name)
        return Verdict(self.action, reason=self.name)


class Sleepy:
    name = "sleepy"

    def check_output(self, ctx: ModerationContext, text: str) -> Verdict:
        time.sleep(0.3)
        return Verdict(Action.FLAG)


class Broken:
    name = "broken"

    def check_input(self, ctx: ModerationContext) -> Verdict:
        raise RuntimeError("boom")


class InputOnly:
    name = "input-only"

    def check_input(self, ctx: ModerationContext) -> Verdict:
        return ALLOW


def test_hooks_run_in_order_and_stop_at_block() -> None:
    calls: list[str] = []
    hooks = [Fixed(n, a, calls) for n, a in [("a", Action.FLAG), ("b", Action.BLOCK), ("c", Action.FLAG)]]
    chain = ModerationChain([(h, HookPolicy()) for h in hooks])
    verdicts = chain.check_stream(CTX, "text")
    assert calls == ["a", "b"]
    assert [v.hook for v in verdicts] == ["a", "b"]
    assert all(v.stage is Stage.STREAM and v.latency_ms >= 0 for v in verdicts)
    assert decide(verdicts) is Action.BLOCK


def test_hooks_without_the_stage_are_skipped() -> None:
    chain = ModerationChain([(InputOnly(), HookPolicy())])
    assert chain.check_stream(CTX, "x") == []
    assert [v.hook for v in chain.check_input(CTX)] == ["input-only"]
    assert decide([]) is Action.ALLOW


@pytest.mark.parametrize("fail_closed, action", [(False, Action.ALLOW), (True, Action.BLOCK)])
def test_a_hook_over_budget_is_a_timeout(fail_closed: bool, action: Action) -> None:
    chain = ModerationChain([(Sleepy(), HookPolicy(budget_ms=20, fail_closed=fail_closed))])
    started = time.perf_counter()
    [verdict] = chain.check_output(CTX, "text")
    assert time.perf_counter() - started < 0.2  # the late call was abandoned, not awaited
    assert verdict.error == "timeout" and verdict.action is action
    assert verdict.hook == "sleepy" and verdict.stage is Stage.OUTPUT


@pytest.mark.parametrize("fail_closed, action", [(False, Action.ALLOW), (True, Action.BLOCK)])
def test_a_hook_that_raises_is_recorded(fail_closed: bool, action: Action) -> None:
    chain = ModerationChain([(Broken(), HookPolicy(fail_closed=fail_closed))])
    [verdict] = chain.check_input(CTX)
    assert verdict.action is action
    assert verdict.error == "RuntimeError: boom"


def test_from_paths_instantiates_like_middleware() -> None:
    chain = ModerationChain.from_paths(
        ["inference.moderation.rules.RulesHook", "inference.moderation.pii.PiiHook"],
        budget_ms=10,
        fail_closed=True,
    )
    assert [type(h) for h, _ in chain.hooks] == [RulesHook, PiiHook]
    assert all(p == HookPolicy(10, True) for _, p in chain.hooks)
    [rules, pii] = chain.check_output(CTX, "write to a@example.com")
    assert rules.action is Action.ALLOW and pii.action is Action.REDACT


@pytest.mark.parametrize("path", ["nodots", "inference.moderation.rules.Missing", "no.such.module.Hook"])
def test_from_paths_rejects_bad_paths(path: str) -> None:
    with pytest.raises(ImportError):
        ModerationChain.from_paths([path])


class SlowButAllowed(Sleepy):
    budget_ms = 2000.0  # its own budget: the chain's default would time it out


def test_a_hook_with_its_own_budget_keeps_it() -> None:
    chain = ModerationChain.from_paths(
        [f"{__name__}.SlowButAllowed", f"{__name__}.Sleepy"], budget_ms=100, fail_closed=True
    )
    assert [p for _, p in chain.hooks] == [HookPolicy(2000.0, True), HookPolicy(100, True)]
    [slow, sleepy] = chain.check_output(CTX, "text")
    assert slow.action is Action.FLAG and not slow.error
    assert sleepy.error == "timeout"


# --- many texts at once: what the reply loop runs once per engine step ---------------


class Blocking:
    """Blocks any text with "stop" in it; no `check_stream_many`, so it is called per text."""

    name = "blocking"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def check_stream(self, ctx: ModerationContext, text: str) -> Verdict:
        self.texts.append(text)
        return Verdict(Action.BLOCK, ("violence_and_threats",)) if "stop" in text else ALLOW


class BrokenOnSome:
    name = "broken-on-some"

    def check_stream(self, ctx: ModerationContext, text: str) -> Verdict:
        if "boom" in text:
            raise RuntimeError("boom")
        return Verdict(Action.FLAG, reason="seen")


def test_check_stream_many_gives_each_text_what_check_stream_gives_it() -> None:
    rules = RulesHook([Rule("violence_and_threats", Action.BLOCK, "word", "kill")])
    chain = ModerationChain(
        [(rules, HookPolicy()), (PiiHook(), HookPolicy()), (BrokenOnSome(), HookPolicy())]
    )
    texts = ["all fine here", "mail me at jane@example.com", "kill it", "boom goes it", ""]
    many = chain.check_stream_many([(CTX, text) for text in texts])
    one = [chain.check_stream(CTX, text) for text in texts]
    strip = lambda verdicts: [(v.hook, v.action, v.categories, v.spans, v.error) for v in verdicts]  # noqa: E731
    assert [strip(v) for v in many] == [strip(v) for v in one]
    assert many[2][-1].action is Action.BLOCK and len(many[2]) == 1  # nothing after a block
    assert many[3][-1].error.startswith("RuntimeError")  # one text's failure is that text's alone
    assert many[0][-1].action is Action.FLAG


def test_check_stream_many_stops_each_text_at_its_own_block() -> None:
    blocking, calls = Blocking(), []
    chain = ModerationChain([(blocking, HookPolicy()), (Fixed("after", Action.FLAG, calls), HookPolicy())])
    many = chain.check_stream_many([(CTX, "go on"), (CTX, "stop now"), (CTX, "carry on")])
    assert [len(v) for v in many] == [2, 1, 2]
    assert len(calls) == 2  # the hook after the block saw the two other texts only


def test_a_batched_hook_over_its_budget_fails_every_text_it_covered() -> None:
    class SlowMany:
        name = "slow-many"

        def check_stream_many(self, items: list) -> list[Verdict]:
            time.sleep(0.3)
            return [ALLOW for _ in items]

    chain = ModerationChain([(SlowMany(), HookPolicy(budget_ms=20, fail_closed=True))])
    many = chain.check_stream_many([(CTX, "a"), (CTX, "b")])
    assert [(v[0].action, v[0].error) for v in many] == [(Action.BLOCK, "timeout")] * 2


def test_a_batched_hook_that_miscounts_fails_every_text() -> None:
    class Short:
        name = "short"

        def check_stream_many(self, items: list) -> list[Verdict]:
            return [ALLOW]

    many = ModerationChain([(Short(), HookPolicy())]).check_stream_many([(CTX, "a"), (CTX, "b")])
    assert all(v[0].error.startswith("ValueError") for v in many)


def test_the_hold_back_is_what_the_hooks_ask_for_at_most_the_cap() -> None:
    from inference.moderation.offensive import OffensiveLanguageHook

    word = RulesHook([Rule("violence_and_threats", Action.BLOCK, "word", "kill")])
    regex = RulesHook([Rule("violence_and_threats", Action.BLOCK, "regex", r"ki+ll")])
    assert word.stream_holdback_chars == 2 * (4 * 4 - 3)  # "k - i - l - l", twice
    assert ModerationChain([(word, HookPolicy())]).stream_hold("any text ", 64) == 26
    assert ModerationChain([(regex, HookPolicy())]).stream_hold("any text ", 64) == 64  # unbounded
    assert ModerationChain([(RulesHook(), HookPolicy())]).stream_hold("any text ", 64) == 0
    assert ModerationChain([(OffensiveLanguageHook(), HookPolicy())]).stream_hold("any text ", 64) == 0
    assert ModerationChain([(Fixed("f", Action.ALLOW, []), HookPolicy())]).stream_hold("x ", 64) == 64
    assert ModerationChain([(InputOnly(), HookPolicy())]).stream_hold("x ", 64) == 0  # no stream check
    # PII holds the run that could still grow into a number or an address.
    assert ModerationChain([(PiiHook(), HookPolicy())]).stream_hold("call +33 6 12 ", 64) == len(
        "call +33 6 12 "
    )
    assert (
        ModerationChain([(word, HookPolicy()), (PiiHook(), HookPolicy())]).stream_hold("x " * 200, 20) == 20
    )


class Where:
    """Records the thread of each call; `inline` says its work is bounded."""

    def __init__(self, inline: bool, threads: list[int], fail: bool = False) -> None:
        self.name, self.inline, self.threads, self.fail = f"where-{inline}", inline, threads, fail

    def check_input(self, ctx: ModerationContext) -> Verdict:
        self.threads.append(threading.get_ident())
        if self.fail:
            raise ValueError("bad")
        return Verdict(Action.FLAG, reason="seen")

    check_output = check_stream = lambda self, ctx, text: self.check_input(ctx)  # noqa: E731


@pytest.mark.parametrize("stage", ["check_input", "check_stream", "check_output"])
def test_an_inline_hook_runs_in_the_callers_thread_and_any_other_in_the_pool(stage: str) -> None:
    here, pooled = [], []
    chain = ModerationChain([(Where(True, here), HookPolicy()), (Where(False, pooled), HookPolicy())])
    args = (CTX,) if stage == "check_input" else (CTX, "text")
    verdicts = getattr(chain, stage)(*args)
    assert here == [threading.get_ident()] and pooled and pooled[0] != threading.get_ident()
    assert [(v.hook, v.action, v.reason) for v in verdicts] == [
        ("where-True", Action.FLAG, "seen"),
        ("where-False", Action.FLAG, "seen"),
    ]
    assert all(v.latency_ms >= 0 and v.stage.value in stage for v in verdicts)


@pytest.mark.parametrize("fail_closed, action", [(False, Action.ALLOW), (True, Action.BLOCK)])
def test_an_inline_hook_that_raises_is_recorded_as_a_pooled_one_is(fail_closed: bool, action: Action) -> None:
    threads: list[int] = []
    chain = ModerationChain([(Where(True, threads, fail=True), HookPolicy(fail_closed=fail_closed))])
    [verdict] = chain.check_input(CTX)
    assert threads == [threading.get_ident()]
    assert verdict.action is action and verdict.error == "ValueError: bad"
