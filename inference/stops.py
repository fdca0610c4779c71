"""Stop strings: cut a streamed text before the first of them, never sending part of one.

Plain Python, used by the reply loop (`inference.streaming`) for the API's `stop`.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopStrings:
    """Feed text as it streams; get back what is safe to send, holding back a possible start of a stop string."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stop for stop in stops if stop)
        self.buffer = ""
        self.hit = False

    def feed(self, text: str) -> str:
        """The text safe to send now; after a stop string was found, nothing more."""
        if self.hit:
            return ""
        self.buffer += text
        found = [index for index in (self.buffer.find(stop) for stop in self.stops) if index >= 0]
        if found:
            self.hit = True
            out, self.buffer = self.buffer[: min(found)], ""
            return out
        hold = max(
            (k for stop in self.stops for k in range(1, len(stop)) if self.buffer.endswith(stop[:k])),
            default=0,
        )
        out = self.buffer[: len(self.buffer) - hold]
        self.buffer = self.buffer[len(out) :]
        return out

    def finish(self) -> str:
        """What was held back, at the end of the text (nothing after a stop string)."""
        out, self.buffer = ("" if self.hit else self.buffer), ""
        return out
