"""What an engine hands over once per step: every live request's new ids, and which ended.

The contract between an engine (`inference.engine`, the scripted one in
tests, a future paged one) and whoever streams its output. A request
submitted with a `sink` is delivered in `StepRow`s, all of one step's rows
for that sink in one call, on the engine's thread; a request without one
gets its ids one by one in its own queue (`Request.tokens`), for callers
that want an iterator (`iterate`). No torch, no Django.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from inference.params import SamplingParams


def _never() -> bool:
    return False


# How long an iterating caller waits for its next id before it looks at `should_stop` again.
STOP_POLL_S = 0.02


class End:
    """Marks the end of a request's stream in its queue."""


END = End()


@dataclass(frozen=True, slots=True)
class StepRow:
    """One request's share of one engine step.

    `token_ids` are the ids it produced since its last row (usually one; two
    when it was prefilled and decoded in the same step; none when it only
    ended). After a row with `finished`, no row for it follows. `error` is
    set when the step failed: the request ended without its reply.
    """

    request: Request
    token_ids: tuple[int, ...] = ()
    finished: bool = False
    error: BaseException | None = None


# Called on the engine's thread with one step's rows; it must only hand them over (a queue put).
StepSink = Callable[[list[StepRow]], None]


@dataclass(eq=False)
class Request:
    """One reply in an engine: its prompt, its parameters, and where its ids go."""

    prompt: list[int]
    params: SamplingParams
    budget: int  # the most ids it may generate: max_tokens, within the context
    generator: Any = None  # the engine's random generator for this request (torch.Generator)
    sink: StepSink | None = None
    # Whatever the submitter wants back with each row (the reply loop's own state).
    tag: Any = None
    tokens: queue.SimpleQueue[int | End | BaseException] = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    generated: int = 0
    ended: bool = False  # its last row (or END) has been delivered
    # Ids whose log-probabilities at the first step are wanted (the moderation judge's answers);
    # filled in by the prefill, before the first id is delivered.
    score_ids: tuple[int, ...] = ()
    first_logprobs: list[float] | None = None

    def cancel(self) -> None:
        """Leave the batch at the next step; its last row says `finished`."""
        self.cancelled.set()


class StepOutput:
    """Collects one step's rows, then delivers them: one call per sink, queue puts for the rest."""

    def __init__(self) -> None:
        self._rows: dict[Request, StepRow] = {}

    def add(self, request: Request, token_id: int) -> None:
        row = self._rows.get(request)
        ids = (*row.token_ids, token_id) if row is not None else (token_id,)
        self._rows[request] = StepRow(request, ids)

    def end(self, request: Request, error: BaseException | None = None) -> None:
        """The request ends at this step (once: a second end is ignored)."""
        if request.ended:
            return
        request.ended = True
        row = self._rows.get(request)
        self._rows[request] = StepRow(request, row.token_ids if row else (), True, error)

    def deliver(self) -> None:
        by_sink: dict[StepSink, list[StepRow]] = {}
        for row in self._rows.values():
            sink = row.request.sink
            if sink is not None:
                by_sink.setdefault(sink, []).append(row)
                continue
            for token_id in row.token_ids:
                row.request.tokens.put(token_id)
            if row.error is not None:
                row.request.tokens.put(row.error)
            elif row.finished:
                row.request.tokens.put(END)
        self._rows.clear()
        for sink, rows in by_sink.items():
            sink(rows)


def iterate(request: Request, should_stop: Callable[[], bool]) -> Iterator[int]:
    """A request's ids one at a time, from its queue; cancels it when left early."""
    try:
        while True:
            if should_stop():
                return
            try:
                item = request.tokens.get(timeout=STOP_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, End):
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # Stopped, finished, or abandoned by the caller: free the slot either way.
        request.cancel()


def check_prompt(prompt_ids: Sequence[int], *, vocab: int, context_length: int) -> list[int]:
    """The prompt as ints; ValueError if it is empty, out of the vocabulary, or fills the context."""
    prompt = [int(i) for i in prompt_ids]
    if not prompt:
        raise ValueError("prompt_ids is empty")
    if min(prompt) < 0 or max(prompt) >= vocab:
        raise ValueError(f"prompt_ids must lie in [0, {vocab})")
    if len(prompt) >= context_length:
        raise ValueError(
            f"prompt of {len(prompt)} tokens leaves no room in the {context_length}-token context"
        )
    return prompt


def check_score_ids(score_ids: Sequence[int], *, vocab: int) -> tuple[int, ...]:
    """The ids to score as ints; ValueError if any lies outside the vocabulary."""
    scored = tuple(int(i) for i in score_ids)
    if scored and (min(scored) < 0 or max(scored) >= vocab):
        raise ValueError(f"score_ids must lie in [0, {vocab})")
    return scored


def await_first_logprobs(request: Request, timeout_s: float) -> list[float]:
    """Wait for a scoring request's first step and return its log-probabilities; it is cancelled after.

    Raises TimeoutError after `timeout_s`, the step's error if it failed, or
    RuntimeError if the request ended without a first step.
    """
    deadline = time.monotonic() + timeout_s
    try:
        while request.first_logprobs is None:
            try:
                item = request.tokens.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise TimeoutError(f"no first step within {timeout_s} s") from None
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, End):
                break
    finally:
        request.cancel()
    if request.first_logprobs is None:
        raise RuntimeError("the request ended before its first step")
    return request.first_logprobs


class CallerSide:
    """What an engine offers besides `submit`: a stream of ids, and first-step log-probabilities.

    Both engines inherit it; each implements `submit` (bad input raises
    ValueError there, so here too, at the call).
    """

    # submit(prompt_ids, params, *, score_ids=(), sink=None, tag=None) -> Request, in each engine.
    submit: Callable[..., Request]

    def generate(
        self, prompt_ids: list[int], params: SamplingParams, *, should_stop: Callable[[], bool] = _never
    ) -> Iterator[int]:
        """Yield generated token ids one at a time.

        Ends after EOS (not yielded, unless ``params.ignore_eos``), after
        ``params.max_tokens`` ids, at the end of the context window, or soon
        after ``should_stop()`` turns true (checked before the request joins
        and while waiting for each token). Bad prompts or parameters raise
        ValueError here, at the call, not at the first ``next``.
        """
        return iterate(self.submit(prompt_ids, params), should_stop)

    def first_logprobs(
        self, prompt_ids: list[int], token_ids: Sequence[int], *, timeout_s: float = 30.0
    ) -> list[float]:
        """The log-probabilities of `token_ids` as the first id after the prompt (softmax over the vocabulary).

        A one-token request that joins the batch like any other: no second
        copy of the model, and it waits its turn. Raises TimeoutError after
        `timeout_s` (the request is cancelled).
        """
        if not token_ids:
            raise ValueError("token_ids is empty: nothing to score")
        request = self.submit(prompt_ids, SamplingParams(temperature=0.0, max_tokens=1), score_ids=token_ids)
        return await_first_logprobs(request, timeout_s)
