"""One reply, from prompt to final text: fit the context, stream, coalesce, stop.

Plain Python over an engine that yields token ids: the Celery task supplies
the callbacks that publish and poll, so this loop runs the same in a test with
no Redis and no Django.
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
from inference.moderation.gate import StreamGate
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
    """Generate one reply, calling `emit(seq, text)` with coalesced text as it comes.

    The texts emitted, in order, concatenate to the outcome's `content`,
    which is the tokenizer's decoding of every generated id, less what
    moderation redacted. `stop_requested` is polled once per coalescing
    interval, so a stop takes effect within one. With `moderation`, the input
    is checked first and the text passes the streaming gate before `emit`
    sees it: a block ends the reply at once. With `raw`, the last message's
    text is the whole prompt (no chat template, no system prompt). With `stop`
    strings, the text ends before the first one the model writes, and the reply
    ends `complete` there.
    """
    started = clock()
    if stop_requested():
        return ReplyOutcome("stopped", "", 0, 0, None, None)
    verdicts: list[Verdict] = []
    if moderation is not None:
        verdicts += _noted(moderation.chain.check_input(moderation.context))
        if decide(verdicts) == Action.BLOCK:
            return ReplyOutcome("blocked", "", 0, 0, None, None, verdicts=tuple(verdicts))
    gate = (
        StreamGate(moderation.chain, moderation.context, holdback_chars=moderation.holdback_chars)
        if moderation is not None
        else None
    )
    try:
        prompt = (
            fit_raw(
                messages[-1]["content"], max_tokens=params.max_tokens, context_limit=settings.context_limit
            )
            if raw
            else fit_chat(
                messages, system_prompt, max_tokens=params.max_tokens, context_limit=settings.context_limit
            )
        )
    except ContextOverflow as overflow:
        return ReplyOutcome("failed", "", 0, 0, None, None, error=str(overflow))

    decoder = IncrementalDecoder()
    interval = settings.coalesce_ms / 1000.0
    pending: list[str] = []
    produced: list[str] = []  # everything emitted, to build the content from
    pending_tokens = 0
    seq = 0
    stopped = threading.Event()  # read by the engine before each step
    completion = 0
    first_at: float | None = None
    last_at = started
    last_flush = last_poll = started

    def flush() -> None:
        nonlocal seq, pending_tokens
        text = "".join(pending)
        pending.clear()
        pending_tokens = 0
        if text:
            seq += 1
            produced.append(text)
            emit(seq, text)

    status, error = "complete", ""
    blocked = False
    stop_at = StopStrings(stop) if stop else None
    try:
        for token_id in engine.generate(prompt.ids, params, should_stop=stopped.is_set):
            now = clock()
            completion += 1
            first_at = first_at if first_at is not None else now
            last_at = now
            delta = decoder.push(token_id)
            if gate is not None:
                passed = gate.feed(delta)
                verdicts += _noted(passed.verdicts)
                delta = passed.release
                if passed.blocked:
                    blocked = True
                    stopped.set()
                    break
            if stop_at is not None:
                # After the gate: only text cleared for the client is searched.
                delta = stop_at.feed(delta)
                if stop_at.hit:
                    pending.append(delta)
                    stopped.set()
                    break
            pending.append(delta)
            pending_tokens += 1
            # The first text goes out at once: coalescing is for throughput, not for the first token.
            if seq == 0 or now - last_flush >= interval or pending_tokens >= settings.coalesce_tokens:
                flush()
                last_flush = now
            if now - last_poll >= interval:
                last_poll = now
                if stop_requested():
                    stopped.set()
        if stopped.is_set() and not blocked and not (stop_at is not None and stop_at.hit):
            status = "stopped"
    except Exception as failure:  # the reply fails, the worker and the user's message stay
        status, error = "failed", f"Generation failed: {failure.__class__.__name__}: {failure}"
    rest = decoder.flush()
    if gate is not None and not blocked:
        last, final = gate.feed(rest), gate.finish()
        verdicts += _noted((*last.verdicts, *final.verdicts))
        blocked = last.blocked or final.blocked
        rest = "" if last.blocked else last.release + ("" if final.blocked else final.release)
    if stop_at is not None:
        rest = stop_at.feed(rest) + stop_at.finish()
    if blocked:
        status = "blocked"
        rest = ""
    pending.append(rest)
    flush()

    ttft_ms = (first_at - started) * 1000.0 if first_at is not None else None
    decode_s = last_at - first_at if first_at is not None else 0.0
    tokens_per_s = (completion - 1) / decode_s if completion > 1 and decode_s > 0 else None
    content = "".join(produced)
    return ReplyOutcome(
        status,
        content,
        len(prompt.ids),
        completion,
        ttft_ms,
        tokens_per_s,
        error,
        verdicts=tuple(verdicts),
        original=gate.original if gate is not None else content,
    )


def _noted(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts worth keeping: every one but a clean allow."""
    return [v for v in verdicts if v.action != Action.ALLOW or v.error]
