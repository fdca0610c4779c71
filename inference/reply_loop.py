"""The worker's reply loop: every reply of the process streamed from one thread, at the engine's step.

The engine hands over each step's new ids for all live replies at once
(`inference.steps`); this loop decodes them, runs the moderation gate over
every reply's due text together (one `check_stream_many` per chain),
coalesces, and publishes the step's events in one call, so the host's cost
per token stays small and does not grow with the number of chats. Job
threads (Celery's) only open a reply, wait for its outcome, and store it.

The end of a reply (its last text, the checks of the whole reply) runs
in its job thread, so one reply's end never holds up the others' steps.
A stop is pushed (`stop(key)`: the engine drops the row at its next step);
`stop_poll`, if given, is asked every `stop_poll_s` which live replies were
asked to stop, in case a push was lost. No Django, no Redis: the caller
supplies `publish` and `stop_poll`.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from inference.moderation.base import ModerationContext
from inference.moderation.chain import ModerationChain
from inference.moderation.gate import GateCheck
from inference.params import SamplingParams
from inference.steps import Request, StepRow, StepSink
from inference.streaming import ReplyOutcome, ReplyStream

logger = logging.getLogger(__name__)


class StepEngine(Protocol):
    def submit(
        self, prompt_ids: list[int], params: SamplingParams, *, sink: StepSink | None = None, tag: Any = None
    ) -> Request: ...


@dataclass(frozen=True, slots=True)
class Emission:
    """One `token` event to publish: the reply's next text."""

    key: str  # the reply (its message id)
    channel: str  # where its events go (its conversation id)
    seq: int
    text: str


class _Live:
    """A reply in the loop, and the job thread waiting for it."""

    __slots__ = (
        "reply",
        "key",
        "channel",
        "request",
        "stop_requested",
        "finished",
        "error",
        "outcome",
        "done",
    )

    def __init__(self, reply: ReplyStream, key: str, channel: str) -> None:
        self.reply = reply
        self.key = key
        self.channel = channel
        self.request: Request | None = None
        self.stop_requested = False
        self.finished = False
        self.error = ""
        self.outcome: ReplyOutcome | None = None
        self.done = threading.Event()


class ReplyLoop:
    def __init__(
        self,
        engine: StepEngine,
        *,
        publish: Callable[[Sequence[Emission]], None],
        stop_poll: Callable[[Collection[str]], Collection[str]] | None = None,
        stop_poll_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self._publish = publish
        self._stop_poll = stop_poll
        self._stop_poll_s = stop_poll_s
        self._clock = clock
        self._inbox: queue.SimpleQueue[list[StepRow]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._thread: threading.Thread | None = None

    # --- the job threads' side -----------------------------------------------------

    def run(self, reply: ReplyStream, *, key: str, channel: str) -> ReplyOutcome:
        """Generate and stream one opened reply; block until it ends and return its outcome."""
        live = _Live(reply, key, channel)
        with self._lock:
            if key in self._live:
                raise ValueError(f"reply {key} is already streaming here")
            self._live[key] = live
            self._ensure_thread()
        try:
            try:
                request = self.engine.submit(reply.prompt_ids, reply.params, sink=self._inbox.put, tag=live)
            except Exception as failure:  # a prompt or parameters the engine refuses
                _, outcome = reply.finish(error=f"Generation failed: {failure.__class__.__name__}: {failure}")
                return outcome
            with self._lock:
                live.request = request
                if live.stop_requested:  # a stop that came before the request existed
                    request.cancel()
            live.done.wait()
        finally:
            with self._lock:
                self._live.pop(key, None)
        if live.outcome is not None:  # the loop failed it
            return live.outcome
        # The engine is done with it: its last text and checks (the whole reply's
        # `check_output`) run here, in the job's thread, not in the loop's.
        last, outcome = reply.finish(stopped=live.stop_requested, error=live.error)
        if last is not None:
            try:
                self._publish([Emission(key, channel, *last)])
            except Exception as failure:  # noqa: BLE001 - the reply ends failed, with what it has
                logger.warning("could not publish the end of %s", key, exc_info=True)
                outcome = dataclasses.replace(
                    outcome, status="failed", error=f"The worker failed: {failure.__class__.__name__}"
                )
        return outcome

    def stop(self, key: str) -> bool:
        """Stop a reply streaming here (from any thread); False if it is not here."""
        with self._lock:
            live = self._live.get(key)
            if live is None:
                return False
            live.stop_requested = True
            if live.request is not None:
                live.request.cancel()
        return True

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._live)

    # --- the loop ----------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="reply-loop", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        next_poll = self._clock() + self._stop_poll_s
        while True:
            try:
                rows = self._inbox.get(timeout=self._stop_poll_s)
            except queue.Empty:
                rows = []
            # Catch up: steps that queued while the last one was processed go together.
            while True:
                try:
                    rows += self._inbox.get_nowait()
                except queue.Empty:
                    break
            if rows:
                self._step(rows)
            if self._stop_poll is not None and self._clock() >= next_poll:
                next_poll = self._clock() + self._stop_poll_s
                self._poll_stops()

    def _poll_stops(self) -> None:
        keys = self.keys()
        if not keys:
            return
        try:
            stopped = self._stop_poll(keys)  # type: ignore[misc]
        except Exception:  # Redis may blink; pushed stops still work, and the next poll retries
            logger.warning("could not poll for stops", exc_info=True)
            return
        for key in stopped:
            self.stop(key)

    def _step(self, rows: list[StepRow]) -> None:
        touched: dict[_Live, None] = {}
        try:
            now = self._clock()
            for row in rows:
                live: _Live = row.request.tag
                if live.done.is_set():
                    continue  # failed already; the engine is dropping it
                live.reply.push(row.token_ids, now)
                if row.error is not None:
                    live.error = f"Generation failed: {row.error.__class__.__name__}: {row.error}"
                live.finished = live.finished or row.finished
                touched[live] = None
            due = [live for live in touched if live.reply.due(now)]
            self._gate(due)
            emissions: dict[_Live, Emission] = {}
            for live in due:
                event = live.reply.emission(now)
                if event is not None:
                    emissions[live] = Emission(live.key, live.channel, *event)
                if live.reply.ended and live.request is not None:
                    live.request.cancel()  # blocked or at a stop string: the engine can stop
            finished = [live for live in touched if live.finished]
        except Exception as failure:  # a bug must not leave job threads waiting forever
            logger.exception("the reply loop failed a step")
            self._fail(touched, failure)
            return
        if emissions:
            try:
                self._publish(list(emissions.values()))
            except Exception as failure:  # e.g. Redis gone: these replies cannot reach their clients
                logger.warning("could not publish a step", exc_info=True)
                self._fail(emissions, failure)
        for live in finished:
            live.done.set()

    def _gate(self, due: list[_Live]) -> None:
        """Offer every due reply's text to its gate; check them together, one call per chain."""
        groups: dict[int, tuple[ModerationChain, list[tuple[_Live, ModerationContext, GateCheck]]]] = {}
        for live in due:
            check = live.reply.offer()
            if check is None:
                continue
            moderation = live.reply.moderation
            assert moderation is not None
            groups.setdefault(id(moderation.chain), (moderation.chain, []))[1].append(
                (live, moderation.context, check)
            )
        for chain, items in groups.values():
            verdicts = chain.check_stream_many([(ctx, check.text) for _, ctx, check in items])
            for (live, _, _), found in zip(items, verdicts, strict=True):
                live.reply.settle(found)

    def _fail(self, lives: Collection[_Live], failure: BaseException) -> None:
        error = f"The worker failed: {failure.__class__.__name__}"
        for live in lives:
            if live.request is not None:
                live.request.cancel()
            try:
                _, outcome = live.reply.finish(error=error)
            except Exception:  # the reply's own state is what failed
                outcome = ReplyOutcome("failed", "", len(live.reply.prompt_ids), 0, None, None, error)
            live.outcome = dataclasses.replace(outcome, status="failed", error=error)
            live.done.set()
