"""The chain: order, early stop, budgets, failures, from_paths."""

from __future__ import annotations

import time

import pytest

from inference.moderation.base import ALLOW, Action, ModerationContext, Stage, Verdict
from inference.moderation.chain import HookPolicy, ModerationChain, decide
from inference.moderation.pii import PiiHook
from inference.moderation.rules import RulesHook

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
