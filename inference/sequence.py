"""One request as the paged engine sees it: its tokens, its blocks, and how far its K/V is computed.

A sequence's tokens are its prompt and then every id it generated. Its K/V
is in the cache for the first `computed` of them; a step computes the next
chunk. One token left to compute is a decode, more is (chunked) prefill: a
request preempted for lack of cache drops all its blocks and is later
recomputed the same way, prompt and reply so far, mostly from the prefix
cache. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inference.block_manager import BlockTable
from inference.steps import Request


@dataclass(eq=False)
class Sequence:
    request: Request
    seed: int  # the sampler's noise comes from (seed, index of the generated id, vocabulary id)
    arrival: int  # submission order: the newest running sequence is preempted first
    token_ids: list[int]
    prompt_len: int
    table: BlockTable = field(default_factory=BlockTable)
    computed: int = 0
    slot: int = -1  # its row in the engine's per-sequence device state while running; -1 when not
    preemptions: int = 0

    @classmethod
    def of(cls, request: Request, *, seed: int, arrival: int) -> Sequence:
        return cls(request, seed, arrival, list(request.prompt), len(request.prompt))

    @property
    def generated(self) -> int:
        return len(self.token_ids) - self.prompt_len

    @property
    def remaining(self) -> int:
        """Tokens still to compute before the next id can be sampled (1 while decoding)."""
        return len(self.token_ids) - self.computed
