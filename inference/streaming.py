"""One reply, from prompt to final text: fit the context, decode, gate, coalesce, stop.

`ReplyStream` is one reply's state, fed the engine's ids by whoever holds
it: `stream_reply` for one reply over an id iterator, or the worker's reply
loop (`inference.reply_loop`) for every reply at once, step by step. Plain
Python: it runs the same in a test with no Redis and no Django.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from inference.chat_template import ContextOverflow, fit_chat, fit_raw
from inference.detokenize import IncrementalDecoder
from inference.moderation.base import Action, ModerationContext, Verdict
from inference.moderation.chain import ModerationChain, decide
from inference.moderation.gate import GateCheck, StreamGate
from inference.params import SamplingParams
from inference.stops import StopStrings


class TokenSource(Protocol):
    def generate(
        self, prompt_ids: list[int], params: SamplingParams, *, should_stop: Callable[[], bool]
    ) -> Iterator[int]: ...


@dataclass(frozen=True)
class ReplyModeration:
    """The hooks a reply passes through: its input before generating, its text as it streams."""

    chain: ModerationChain
    context: ModerationContext
    holdback_chars: int = 64


@dataclass(frozen=True)
class StreamSettings:
    context_limit: int
    coalesce_ms: float = 30.0
    coalesce_tokens: int = 16


# The stats of a reply, as stored on the message and sent in `done`.
STAT_FIELDS = ("prompt_tokens", "completion_tokens", "ttft_ms", "tokens_per_s")


@dataclass(frozen=True)
class ReplyOutcome:
    status: str  # "complete", "stopped" or "failed"
    content: str
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    tokens_per_s: float | None
    error: str = ""
    # Verdicts other than allow, for staff; and the text as generated, before
    # any redaction (the content is what the user saw).
    verdicts: tuple[Verdict, ...] = ()
    original: str = ""

    def stats(self) -> dict[str, float | int | None]:
        return {name: getattr(self, name) for name in STAT_FIELDS}


class ReplyStream:
    """One reply's text on its way out: decode, gate, stop strings, coalesce. No threads, no I/O.

    Made by `open` (input moderation and the prompt, before any generating),
    then fed the engine's ids as they come (`push`). When `due`, its text is
    released in two halves, `offer` (what the moderation hooks must pass)
    and `settle` (their verdicts), so that a loop holding many replies can
    check all their texts at once; `emission` then gives the next `(seq,
    text)` to publish. `finish` flushes the rest and says how it ended.
    """

    def __init__(
        self,
        *,
        prompt_ids: list[int],
        params: SamplingParams,
        settings: StreamSettings,
        moderation: ReplyModeration | None,
        stop: Sequence[str],
        started: float,
        verdicts: list[Verdict],
    ) -> None:
        self.prompt_ids = prompt_ids
        self.params = params
        self.settings = settings
        self.moderation = moderation
        self.gate = (
            StreamGate(moderation.chain, moderation.context, holdback_chars=moderation.holdback_chars)
            if moderation is not None
            else None
        )
        self.stop_at = StopStrings(stop) if stop else None
        self.verdicts = verdicts
        self.started = started
        self.decoder = IncrementalDecoder()
        self.seq = 0
        self.completion = 0
        self.first_at: float | None = None
        self.last_at = started
        self.last_flush = started
        self.blocked = False
        self._raw: list[str] = []  # decoded, not yet offered to the gate
        self._raw_tokens = 0
        self._check: GateCheck | None = None
        self._release: list[str] = []  # cleared for the client, not yet emitted
        self._produced: list[str] = []  # everything emitted, to build the content from

    @classmethod
    def open(
        cls,
        *,
        messages: Sequence[dict[str, str]],
        system_prompt: str | None,
        params: SamplingParams,
        settings: StreamSettings,
        moderation: ReplyModeration | None = None,
        raw: bool = False,
        stop: Sequence[str] = (),
        started: float,
    ) -> ReplyStream | ReplyOutcome:
        """A reply ready to generate, or its outcome already: blocked by input moderation, or too long."""
        verdicts: list[Verdict] = []
        if moderation is not None:
            verdicts += _noted(moderation.chain.check_input(moderation.context))
            if decide(verdicts) == Action.BLOCK:
                return ReplyOutcome("blocked", "", 0, 0, None, None, verdicts=tuple(verdicts))
        try:
            prompt = (
                fit_raw(
                    messages[-1]["content"],
                    max_tokens=params.max_tokens,
                    context_limit=settings.context_limit,
                )
                if raw
                else fit_chat(
                    messages,
                    system_prompt,
                    max_tokens=params.max_tokens,
                    context_limit=settings.context_limit,
                )
            )
        except ContextOverflow as overflow:
            return ReplyOutcome("failed", "", 0, 0, None, None, error=str(overflow))
        return cls(
            prompt_ids=prompt.ids,
            params=params,
            settings=settings,
            moderation=moderation,
            stop=stop,
            started=started,
            verdicts=verdicts,
        )

    @property
    def ended(self) -> bool:
        """Blocked, or past a stop string: the engine can stop generating for it."""
        return self.blocked or (self.stop_at is not None and self.stop_at.hit)

    def push(self, token_ids: Sequence[int], now: float) -> None:
        """Take the engine's next ids."""
        if not token_ids:
            return
        self.completion += len(token_ids)
        self.first_at = self.first_at if self.first_at is not None else now
        self.last_at = now
        self._raw.extend(self.decoder.push(token_id) for token_id in token_ids)
        self._raw_tokens += len(token_ids)

    def due(self, now: float) -> bool:
        """Whether text is waiting and it is time to send: the first text at once, then coalesced."""
        if not self._raw_tokens or self.ended:
            return False
        interval = self.settings.coalesce_ms / 1000.0
        return (
            self.seq == 0
            # A stop string is looked for at every step, so the engine stops right there.
            or self.stop_at is not None
            or now - self.last_flush >= interval
            or self._raw_tokens >= self.settings.coalesce_tokens
        )

    def offer(self) -> GateCheck | None:
        """Move the decoded text to the gate; what its hooks must check (None: nothing to check)."""
        delta = _storable("".join(self._raw))
        self._raw.clear()
        self._raw_tokens = 0
        if self.gate is None:
            self._cleared(delta)
            return None
        self._check = self.gate.offer(delta)
        return self._check

    def settle(self, verdicts: list[Verdict]) -> None:
        """The verdicts of the last `offer`'s check: release what they allow."""
        check, self._check = self._check, None
        assert self.gate is not None and check is not None
        passed = self.gate.settle(check, verdicts)
        self.verdicts += _noted(passed.verdicts)
        if passed.blocked:
            self.blocked = True
            return
        self._cleared(passed.release)

    def emission(self, now: float) -> tuple[int, str] | None:
        """The next event's `(seq, text)`, or None if nothing was cleared."""
        self.last_flush = now
        text = "".join(self._release)
        self._release.clear()
        if not text:
            return None
        self.seq += 1
        self._produced.append(text)
        return self.seq, text

    def flush(self, now: float) -> tuple[int, str] | None:
        """`offer`, this reply's own check, `settle`, `emission`: one reply on its own."""
        check = self.offer()
        if check is not None:
            assert self.moderation is not None
            self.settle(self.moderation.chain.check_stream(self.moderation.context, check.text))
        return self.emission(now)

    def finish(
        self, *, stopped: bool = False, error: str = ""
    ) -> tuple[tuple[int, str] | None, ReplyOutcome]:
        """The engine is done with it: the last event (if any text is left) and the outcome.

        `stopped`: a person asked (ignored when the reply ended on a block or
        a stop string); `error`: the engine failed.
        """
        rest = _storable("".join(self._raw) + self.decoder.flush())
        self._raw.clear()
        if self.gate is not None and not self.blocked:
            last, final = self.gate.feed(rest), self.gate.finish()
            self.verdicts += _noted((*last.verdicts, *final.verdicts))
            self.blocked = last.blocked or final.blocked
            rest = "" if last.blocked else last.release + ("" if final.blocked else final.release)
        elif self.blocked:
            rest = ""
        if self.stop_at is not None and not self.blocked:
            rest = self.stop_at.feed(rest) + self.stop_at.finish()
        if self.blocked:
            self._release.clear()
            rest = ""
        self._release.append(rest)
        status = "complete"
        if error:
            status = "failed"
        elif self.blocked:
            status = "blocked"
        elif stopped and not self.ended:
            status = "stopped"
        last_event = self.emission(self.last_at)
        ttft_ms = (self.first_at - self.started) * 1000.0 if self.first_at is not None else None
        decode_s = self.last_at - self.first_at if self.first_at is not None else 0.0
        tokens_per_s = (self.completion - 1) / decode_s if self.completion > 1 and decode_s > 0 else None
        content = "".join(self._produced)
        outcome = ReplyOutcome(
            status,
            content,
            len(self.prompt_ids),
            self.completion,
            ttft_ms,
            tokens_per_s,
            error,
            verdicts=tuple(self.verdicts),
            original=self.gate.original if self.gate is not None else content,
        )
        return last_event, outcome

    def _cleared(self, text: str) -> None:
        if self.stop_at is not None:
            # After the gate: only text cleared for the client is searched.
            text = self.stop_at.feed(text)
        if text:
            self._release.append(text)


def stream_reply(
    *,
    engine: TokenSource,
    messages: Sequence[dict[str, str]],
    system_prompt: str | None,
    params: SamplingParams,
    settings: StreamSettings,
    emit: Callable[[int, str], None],
    stop_requested: Callable[[], bool],
    clock: Callable[[], float] = time.monotonic,
    moderation: ReplyModeration | None = None,
    raw: bool = False,
    stop: Sequence[str] = (),
) -> ReplyOutcome:
    """Generate one reply from an engine's id iterator, calling `emit(seq, text)` as text is cleared.

    One reply in the calling thread (the worker streams all of its replies
    from one loop instead: `inference.reply_loop`). The texts emitted, in
    order, concatenate to the outcome's `content`, which is the tokenizer's
    decoding of every generated id, less what moderation redacted.
    `stop_requested` is polled once per coalescing interval. With
    `moderation`, the input is checked first and the text passes the
    streaming gate before `emit` sees it: a block ends the reply at once.
    With `raw`, the last message's text is the whole prompt (no chat
    template, no system prompt). With `stop` strings, the text ends before
    the first one the model writes, and the reply ends `complete` there.
    """
    started = clock()
    if stop_requested():
        return ReplyOutcome("stopped", "", 0, 0, None, None)
    reply = ReplyStream.open(
        messages=messages,
        system_prompt=system_prompt,
        params=params,
        settings=settings,
        moderation=moderation,
        raw=raw,
        stop=stop,
        started=started,
    )
    if isinstance(reply, ReplyOutcome):
        return reply
    stopped = threading.Event()  # read by the engine before each step
    interval = settings.coalesce_ms / 1000.0
    last_poll = started
    error = ""
    try:
        for token_id in engine.generate(reply.prompt_ids, params, should_stop=stopped.is_set):
            now = clock()
            reply.push((token_id,), now)
            if reply.due(now) and (event := reply.flush(now)) is not None:
                emit(*event)
            if reply.ended:
                stopped.set()
                break
            if now - last_poll >= interval:
                last_poll = now
                if stop_requested():
                    stopped.set()
    except Exception as failure:  # the reply fails, the worker and the user's message stay
        error = f"Generation failed: {failure.__class__.__name__}: {failure}"
    last, outcome = reply.finish(stopped=stopped.is_set(), error=error)
    if last is not None:
        emit(*last)
    return outcome


def _noted(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts worth keeping: every one but a clean allow."""
    return [v for v in verdicts if v.action != Action.ALLOW or v.error]


def _storable(text: str) -> str:
    """The model's text with NUL shown as U+FFFD.

    A model can emit the byte piece <0x00>; PostgreSQL's text columns refuse
    NUL, which failed the whole reply. Replaced here, before the gate, the
    stream and the stored text alike see the same characters.
    """
    return text.replace("\x00", "\ufffd") if "\x00" in text else text
