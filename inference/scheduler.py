"""Which sequences run in the next step, and how many of their tokens: chunked prefill under a budget.

Each step computes at most `max_tokens_per_step` tokens. Decoding rows go
first (one token each), then the prefills already started, then new
requests, each prefill cut to what is left of the budget: a 30k-token
prompt is computed a chunk per step alongside the rows already decoding,
never stalling them for more than one chunk. A new request is admitted
only when the cache has blocks for its whole prompt (after the prefix
cache's share) and a row is free; otherwise it waits, in order. When a
decoding row needs a block and none is free, the newest running sequence is
preempted: its blocks go back and it waits at the head of the queue, to be
recomputed later. No torch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from inference.block_manager import BlockManager
from inference.sequence import Sequence


@dataclass(frozen=True, slots=True)
class ScheduledRow:
    """One sequence's share of a step: its tokens [start, start + length)."""

    sequence: Sequence
    start: int
    length: int
    samples: bool  # the chunk reaches the end of the sequence: the step samples its next id

    @classmethod
    def of(cls, sequence: Sequence, length: int) -> ScheduledRow:
        return cls(sequence, sequence.computed, length, sequence.computed + length == len(sequence.token_ids))


class Scheduler:
    def __init__(self, blocks: BlockManager, *, max_batch: int, max_tokens_per_step: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_tokens_per_step < max_batch:
            raise ValueError("max_tokens_per_step must be at least max_batch (one decode token per row)")
        self.blocks = blocks
        self.max_batch = max_batch
        self.max_tokens_per_step = max_tokens_per_step
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # in order of arrival
        self._free_slots = list(range(max_batch - 1, -1, -1))
        self.preemptions = 0

    def add(self, sequence: Sequence) -> None:
        self.waiting.append(sequence)

    def position(self, sequence: Sequence) -> int | None:
        """Its place in the queue (0 = next), or None when running or gone."""
        try:
            return self.waiting.index(sequence)
        except ValueError:
            return None

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> list[ScheduledRow]:
        """The next step's rows; blocks are allocated for them here."""
        rows: list[ScheduledRow] = []
        budget = self.max_tokens_per_step
        for sequence in list(self.running):
            # A sequence preempted earlier in this loop holds no blocks: it waits now.
            if sequence.remaining == 1 and sequence.table.blocks and self._make_room(sequence):
                self.blocks.grow(sequence.table, sequence.computed + 1)
                rows.append(ScheduledRow.of(sequence, 1))
                budget -= 1
        for sequence in self.running:
            if sequence.remaining > 1 and budget > 0:
                rows.append(ScheduledRow.of(sequence, min(sequence.remaining, budget)))
                budget -= rows[-1].length
        while self.waiting and budget > 0 and self._free_slots:
            sequence = self.waiting[0]
            if not self.blocks.can_allocate(sequence.token_ids):
                break  # first come, first served: the head waits for blocks, nobody overtakes it
            self.waiting.popleft()
            sequence.computed = self.blocks.allocate(sequence.table, sequence.token_ids)
            sequence.slot = self._free_slots.pop()
            self.running.append(sequence)
            self.running.sort(key=lambda s: s.arrival)
            rows.append(ScheduledRow.of(sequence, min(sequence.remaining, budget)))
            budget -= rows[-1].length
        return rows

    def advance(self, rows: list[ScheduledRow]) -> None:
        """The step ran: the rows' tokens are in the cache; full blocks join the prefix cache."""
        for row in rows:
            sequence = row.sequence
            sequence.computed = row.start + row.length
            self.blocks.commit(sequence.table, sequence.token_ids, sequence.computed)

    def finish(self, sequence: Sequence) -> None:
        """The sequence is done (ended, cancelled or failed): its blocks and row go back at once."""
        if sequence in self.running:
            self.running.remove(sequence)
            self._release(sequence)
        elif sequence in self.waiting:
            self.waiting.remove(sequence)

    def preempt(self, sequence: Sequence) -> None:
        """Drop its blocks and queue it first, to be recomputed (prompt and reply so far) later."""
        self.running.remove(sequence)
        self._release(sequence)
        sequence.computed = 0
        sequence.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(sequence)

    def _make_room(self, sequence: Sequence) -> bool:
        """Free a block for `sequence`'s next token by preempting the newest; False if it was the newest."""
        while not self.blocks.can_grow(sequence.table, sequence.computed + 1):
            victim = self.running[-1]  # the newest: running is kept in order of arrival
            self.preempt(victim)
            if victim is sequence:
                return False
        return True

    def _release(self, sequence: Sequence) -> None:
        self.blocks.free(sequence.table)
        self._free_slots.append(sequence.slot)
        sequence.slot = -1
