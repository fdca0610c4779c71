"""The streaming gate: release reply text only after `check_stream` has passed it.

The last characters are held back until more text arrives (or the reply
finishes), so that what a hook matches is seen whole before any part of it
is released: as many as the chain's hooks ask for (`ModerationChain.stream_hold`:
a rules hook its longest possible match, PII the trailing run that could
still grow into an address or a number, a hook that says nothing the whole
`holdback_chars`), and never more than `holdback_chars`. Matches longer than
that are not guaranteed: their start may already be out when their end
arrives.

Also held back: a trailing word that may not be finished yet ("ass" +
"istant"), so a word rule never fires on a word's prefix; a trailing run of
word characters longer than the holdback (and 32) is checked as it stands.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass

from inference.moderation.base import Action, ModerationContext, Span, Verdict, apply_spans, merge_spans
from inference.moderation.chain import ModerationChain

# Original characters before the unreleased text that hooks also see, so a
# word boundary at the start of the unreleased text is judged right ("s" +
# "kill" is "skill"). Spans inside this context are ignored: it is out already.
_CONTEXT = 16
# A trailing word is waited for up to this many characters (or the holdback,
# if longer); a longer run (a URL, a hash) is checked as it stands.
_MAX_WORD = 32


@dataclass(frozen=True)
class GateCheck:
    """Text the hooks must pass before the gate can release up to `limit` pending characters."""

    start: int  # original offset of `text`
    text: str
    limit: int


@dataclass(frozen=True)
class GateOutput:
    release: str  # text that may be sent now
    # New verdicts other than ALLOW (and failed hooks), spans in offsets into `original`.
    verdicts: tuple[Verdict, ...] = ()
    blocked: bool = False


def _wordish(char: str) -> bool:
    # Characters that folding can turn into, or hide inside, a letter: a word
    # may continue through them.
    return char.isalnum() or char in "@$_" or unicodedata.category(char) in ("Cf", "Mn", "Mc", "Me")


class StreamGate:
    def __init__(self, chain: ModerationChain, ctx: ModerationContext, *, holdback_chars: int = 64) -> None:
        if holdback_chars < 0:
            raise ValueError("holdback_chars must be >= 0")
        self.chain = chain
        self.ctx = ctx
        self.holdback = holdback_chars
        self._original: list[str] = []
        self._released: list[str] = []
        self._base = 0  # original offset where the unreleased text starts
        self._pending = ""
        self._blocked = False
        self._reported: set[tuple[object, ...]] = set()

    @property
    def released(self) -> str:
        """Everything released so far: the reply as the user sees it."""
        return "".join(self._released)

    @property
    def original(self) -> str:
        """Everything fed: kept for staff only."""
        return "".join(self._original)

    @property
    def blocked(self) -> bool:
        return self._blocked

    def feed(self, delta: str) -> GateOutput:
        """Take more reply text; return what may now be sent."""
        check = self.offer(delta)
        if check is None:
            return GateOutput("", (), self._blocked)
        return self.settle(check, self.chain.check_stream(self.ctx, check.text))

    def offer(self, delta: str) -> GateCheck | None:
        """Take more reply text; return what the hooks must check, or None if nothing could be released.

        `feed` in two halves, so that a caller holding many gates can run
        their checks together (`ModerationChain.check_stream_many`) and
        `settle` each with its verdicts.
        """
        if self._blocked:
            return None
        self._original.append(delta)
        self._pending += delta
        checkable = self._complete_prefix()
        limit = checkable - self.chain.stream_hold(self._pending[:checkable], self.holdback)
        if limit <= 0:
            return None  # nothing could be released: no need to check yet
        start, text = self._window(checkable)
        return GateCheck(start, text, limit)

    def settle(self, check: GateCheck, verdicts: list[Verdict]) -> GateOutput:
        """Apply the verdicts of `check`'s text: what may now be sent."""
        return self._release(verdicts, check.start, limit=check.limit)

    def finish(self) -> GateOutput:
        """The reply has ended: check what is left, and the whole reply, and release the rest."""
        if self._blocked:
            return GateOutput("", (), True)
        start, text = self._window(len(self._pending))
        verdicts = self.chain.check_stream(self.ctx, text) if self._pending else []
        if not any(v.action is Action.BLOCK for v in verdicts):
            # check_output sees the whole original reply: its spans are absolute already.
            verdicts += [_shift(v, -start) for v in self.chain.check_output(self.ctx, self.original)]
        return self._release(verdicts, start, limit=len(self._pending))

    def _complete_prefix(self) -> int:
        """Length of the unreleased text up to the end of its last complete word."""
        text = self._pending
        end = len(text)
        while end > 0 and _wordish(text[end - 1]):
            end -= 1
        if len(text) - end > max(self.holdback, _MAX_WORD):
            return len(text)  # a run longer than the holdback: check it as it stands
        return end

    def _window(self, length: int) -> tuple[int, str]:
        """The text to check (context + unreleased[:length]) and its original offset."""
        original = self.original
        start = max(0, self._base - _CONTEXT)
        return start, original[start : self._base + length]

    def _release(self, verdicts: list[Verdict], start: int, *, limit: int) -> GateOutput:
        """Apply the verdicts of a check of `original[start:...]`; release up to `limit` pending chars."""
        offset = self._base - start  # where the pending text starts in the checked text
        new = self._report(verdicts, start)
        if any(v.action is Action.BLOCK for v in verdicts):
            self._blocked = True
            return GateOutput("", new, True)
        spans = []
        for verdict in verdicts:
            if verdict.action is not Action.REDACT:
                continue
            for span in verdict.spans:
                if span.end > offset:  # in the context: released already
                    spans.append(Span(max(span.start, offset) - offset, span.end - offset, span.replacement))
        cut = limit
        kept: list[Span] = []
        for span in merge_spans(spans):
            if span.start >= cut:
                break
            if span.end > cut:
                cut = span.start  # never release part of a redaction; wait for the rest
                break
            kept.append(span)
        release = apply_spans(self._pending[:cut], kept)
        self._pending = self._pending[cut:]
        self._base += cut
        self._released.append(release)
        return GateOutput(release, new)

    def _report(self, verdicts: list[Verdict], start: int) -> tuple[Verdict, ...]:
        """Verdicts worth storing that were not reported before, spans made absolute."""
        out = []
        for verdict in verdicts:
            if verdict.action is Action.ALLOW and not verdict.error:
                continue
            absolute = _shift(verdict, start)
            key = (absolute.hook, absolute.action, absolute.categories, absolute.reason, absolute.error)
            if absolute.spans:
                # A span in the held-back window is seen at every feed: report each once.
                # Keyed by hook and span only: the reason may grow as more text matches.
                fresh = tuple(s for s in absolute.spans if (absolute.hook, s) not in self._reported)
                if not fresh:
                    continue
                self._reported.update((absolute.hook, s) for s in fresh)
                out.append(dataclasses.replace(absolute, spans=fresh))
            elif key not in self._reported:
                self._reported.add(key)
                out.append(absolute)
        return tuple(out)


def _shift(verdict: Verdict, by: int) -> Verdict:
    if not verdict.spans or not by:
        return verdict
    spans = tuple(Span(s.start + by, s.end + by, s.replacement) for s in verdict.spans)
    return dataclasses.replace(verdict, spans=spans)
