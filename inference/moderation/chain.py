"""Run moderation hooks in order, each under a time budget and a failure policy.

A hook that says it is `inline` (bounded work) runs in the calling thread
with no budget; the others run in a small thread pool, waited for at most
their budget.

The chain is configured like Django middleware: a list of dotted paths to
hook classes, each instantiated with no arguments (`from_paths`).
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from inference.moderation.base import Action, Hook, ModerationContext, Stage, Verdict, most_severe
from inference.moderation.policy import Policies, apply_policy


@dataclass(frozen=True)
class HookPolicy:
    """How long a hook may take, and what a failed or late hook means."""

    budget_ms: float = 50.0
    # A hook that raises or runs over the budget: BLOCK if fail_closed else ALLOW.
    fail_closed: bool = False


# One small pool for every chain in the process. A Python thread cannot be
# killed: a call that runs over its budget is abandoned, keeps its thread
# until it returns on its own, and its result is ignored. The pool is sized
# so that a few stuck hooks do not starve the others.
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="moderation")

_METHODS = {Stage.INPUT: "check_input", Stage.STREAM: "check_stream", Stage.OUTPUT: "check_output"}


def import_hook(path: str) -> Hook:
    """Import `package.module.Class` and instantiate it with no arguments."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ImportError(f"{path!r} is not a dotted path to a hook class")
    cls = getattr(importlib.import_module(module_name), attr, None)
    if cls is None:
        raise ImportError(f"module {module_name!r} has no attribute {attr!r}")
    return cls()


class ModerationChain:
    def __init__(self, hooks: Sequence[tuple[Hook, HookPolicy]], policies: Policies | None = None) -> None:
        self.hooks = tuple(hooks)
        # Category policies (see `policy`); None leaves every hook's own action.
        self.policies = policies

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str],
        *,
        budget_ms: float = 50.0,
        fail_closed: bool = False,
        policies: Policies | None = None,
    ) -> ModerationChain:
        hooks = [import_hook(path) for path in paths]
        # A hook that needs longer (a network call, the judge) says so with its own `budget_ms`.
        hook_policies = [HookPolicy(getattr(h, "budget_ms", None) or budget_ms, fail_closed) for h in hooks]
        return cls(list(zip(hooks, hook_policies, strict=True)), policies)

    def check_input(self, ctx: ModerationContext) -> list[Verdict]:
        return self._run(Stage.INPUT, ctx, ())

    def check_stream(self, ctx: ModerationContext, text: str) -> list[Verdict]:
        return self._run(Stage.STREAM, ctx, (text,))

    def check_output(self, ctx: ModerationContext, text: str) -> list[Verdict]:
        return self._run(Stage.OUTPUT, ctx, (text,))

    def stream_hold(self, text: str, cap: int) -> int:
        """How many trailing characters of `text` the streaming gate must hold back: at most `cap`.

        Each hook with a stream check says what it must see whole: a fixed
        `stream_holdback_chars` (None: unbounded) or `stream_hold(text)` for
        this text; a hook that says nothing gets `cap`, the setting.
        """
        hold = 0
        for hook, _ in self.hooks:
            if not (hasattr(hook, "check_stream") or hasattr(hook, "check_stream_many")):
                continue
            dynamic = getattr(hook, "stream_hold", None)
            need = dynamic(text) if dynamic is not None else getattr(hook, "stream_holdback_chars", None)
            if need is None or need >= cap:
                return cap
            hold = max(hold, need)
        return hold

    def check_stream_many(self, items: Sequence[tuple[ModerationContext, str]]) -> list[list[Verdict]]:
        """`check_stream` of many replies' texts at once: one call per hook for all of them.

        What the reply loop uses once per engine step. A hook with
        `check_stream_many(items)` gets them in one call under its budget
        (the classifier scores them in one product), in this thread if it
        says it is `inline` (bounded work: no hop to the pool, no budget);
        any other is called once per text, all in flight together. Each
        text's verdicts are those `check_stream` would give it, and stop
        after its first BLOCK.
        """
        results: list[list[Verdict]] = [[] for _ in items]
        live = list(range(len(items)))
        for hook, policy in self.hooks:
            if not live:
                break
            many = getattr(hook, "check_stream_many", None)
            one = getattr(hook, "check_stream", None)
            if many is None and one is None:
                continue
            batch = [items[i] for i in live]
            if many is not None and getattr(hook, "inline", False):
                verdicts = _call_inline(many, batch, policy)
            else:
                verdicts = _call_many(many, one, batch, policy)
            name = _hook_name(hook)
            allow = Verdict(Action.ALLOW, hook=name, stage=Stage.STREAM)
            exempt = not self.policies or getattr(hook, "policy_exempt", False)
            for index, verdict in zip(live, verdicts, strict=True):
                if verdict.action is Action.ALLOW and not verdict.categories and not verdict.error:
                    results[index].append(allow)  # the common case, with nothing to keep
                    continue
                if not exempt:
                    verdict = apply_policy(verdict, self.policies, Stage.STREAM)  # type: ignore[arg-type]
                results[index].append(dataclasses.replace(verdict, hook=name, stage=Stage.STREAM))
            live = [i for i in live if results[i][-1].action is not Action.BLOCK]
        return results

    def _run(self, stage: Stage, ctx: ModerationContext, args: tuple[str, ...]) -> list[Verdict]:
        """Every hook with the stage's method, in order; stop after the first BLOCK."""
        verdicts: list[Verdict] = []
        for hook, policy in self.hooks:
            method = getattr(hook, _METHODS[stage], None)
            if method is None:
                continue
            if getattr(hook, "inline", False):
                verdict = _call_here(method, (ctx, *args), policy)
            else:
                verdict = _call(method, (ctx, *args), policy)
            if self.policies and not getattr(hook, "policy_exempt", False):
                verdict = apply_policy(verdict, self.policies, stage)
            verdicts.append(dataclasses.replace(verdict, hook=_hook_name(hook), stage=stage))
            if verdict.action is Action.BLOCK:
                break  # nothing after a block can change the outcome
        return verdicts


def _hook_name(hook: Hook) -> str:
    return getattr(hook, "name", "") or type(hook).__name__


def _call(method: Callable[..., Verdict], args: tuple[object, ...], policy: HookPolicy) -> Verdict:
    """Run one hook call in the pool and wait at most its budget."""
    started = time.perf_counter()
    return _result(_POOL.submit(method, *args), started, policy)


def _call_here(method: Callable[..., Verdict], args: tuple[object, ...], policy: HookPolicy) -> Verdict:
    """A bounded (`inline`) hook's call in this thread: no hop to the pool and back, no budget.

    Two thread hand-offs a call, each a wait for the GIL when the worker is
    busy: a reply's input and output checks made six on its first-token path
    and at its end. A failure is recorded as `_call` records it.
    """
    started = time.perf_counter()
    try:
        return _checked(method(*args), started, policy)
    except Exception as exc:  # noqa: BLE001 - any failure of a hook is recorded, never raised
        return _failed(f"{type(exc).__name__}: {exc}", started, policy)


def _call_many(
    many: Callable[..., list[Verdict]] | None,
    one: Callable[..., Verdict] | None,
    items: list[tuple[ModerationContext, str]],
    policy: HookPolicy,
) -> list[Verdict]:
    """One hook over many texts: in one pool call under one budget if it has `check_stream_many`,
    else one call per text, all in flight together, each under its own budget (as `_call`)."""
    started = time.perf_counter()
    if many is None:
        assert one is not None
        futures = [_POOL.submit(one, ctx, text) for ctx, text in items]
        return [_result(future, started, policy) for future in futures]
    future = _POOL.submit(many, items)
    try:
        verdicts = list(future.result(timeout=policy.budget_ms / 1000.0))
        if len(verdicts) != len(items):
            raise ValueError(f"{len(verdicts)} verdicts for {len(items)} texts")
    except FutureTimeout:
        future.cancel()
        return [_failed("timeout", started, policy)] * len(items)
    except Exception as exc:  # noqa: BLE001 - any failure of a hook is recorded, never raised
        return [_failed(f"{type(exc).__name__}: {exc}", started, policy)] * len(items)
    return [_checked(verdict, started, policy) for verdict in verdicts]


def _call_inline(
    many: Callable[..., list[Verdict]], items: list[tuple[ModerationContext, str]], policy: HookPolicy
) -> list[Verdict]:
    """A bounded hook over many texts, in this thread; a failure fails every text."""
    started = time.perf_counter()
    try:
        verdicts = list(many(items))
        if len(verdicts) != len(items):
            raise ValueError(f"{len(verdicts)} verdicts for {len(items)} texts")
    except Exception as exc:  # noqa: BLE001 - any failure of a hook is recorded, never raised
        return [_failed(f"{type(exc).__name__}: {exc}", started, policy)] * len(items)
    return [
        v if isinstance(v, Verdict) and v.action is Action.ALLOW else _checked(v, started, policy)
        for v in verdicts
    ]


def _result(future: Future[Verdict], started: float, policy: HookPolicy) -> Verdict:
    """A call's verdict, waited for until `policy`'s budget from `started` runs out."""
    remaining = policy.budget_ms / 1000.0 - (time.perf_counter() - started)
    try:
        return _checked(future.result(timeout=max(remaining, 0.0)), started, policy)
    except FutureTimeout:
        future.cancel()  # only helps if it has not started; a running call is abandoned
        return _failed("timeout", started, policy)
    except Exception as exc:  # noqa: BLE001 - any failure of a hook is recorded, never raised
        return _failed(f"{type(exc).__name__}: {exc}", started, policy)


def _checked(verdict: object, started: float, policy: HookPolicy) -> Verdict:
    if not isinstance(verdict, Verdict):
        return _failed(f"TypeError: hook returned {type(verdict).__name__}, not a Verdict", started, policy)
    return dataclasses.replace(verdict, latency_ms=(time.perf_counter() - started) * 1000.0)


def _failed(error: str, started: float, policy: HookPolicy) -> Verdict:
    action = Action.BLOCK if policy.fail_closed else Action.ALLOW
    latency_ms = (time.perf_counter() - started) * 1000.0
    return Verdict(action, reason=f"hook failed ({error})", error=error, latency_ms=latency_ms)


def decide(verdicts: Sequence[Verdict]) -> Action:
    """The most severe action among `verdicts`."""
    return most_severe(v.action for v in verdicts)
