"""The scheduler: decodes first, chunked prefill under a token budget, waiting and preemption."""

from __future__ import annotations

import pytest

from inference.block_manager import BlockManager
from inference.params import SamplingParams
from inference.scheduler import ScheduledRow, Scheduler
from inference.sequence import Sequence
from inference.steps import Request

BS = 4


def _sequence(prompt_len: int, arrival: int, first: int = 10) -> Sequence:
    prompt = list(range(first, first + prompt_len))
    return Sequence.of(Request(prompt=prompt, params=SamplingParams(), budget=100), seed=0, arrival=arrival)


def _step(scheduler: Scheduler, next_id: int = 5) -> list[ScheduledRow]:
    """Schedule, 'run', and append an id to every row that sampled."""
    rows = scheduler.schedule()
    scheduler.advance(rows)
    for row in rows:
        if row.samples:
            row.sequence.token_ids.append(next_id)
    return rows


def _shape(rows: list[ScheduledRow]) -> list[tuple[int, int]]:
    return [(row.sequence.arrival, row.length) for row in rows]


def test_a_long_prompt_is_prefilled_a_chunk_a_step_beside_the_decoding_rows() -> None:
    scheduler = Scheduler(BlockManager(64, BS), max_batch=4, max_tokens_per_step=8)
    short = _sequence(3, arrival=0)
    scheduler.add(short)
    assert _shape(_step(scheduler)) == [(0, 3)]
    scheduler.add(_sequence(30, arrival=1, first=100))
    shapes = [_shape(_step(scheduler)) for _ in range(5)]
    # The decode row goes first every step; the long prompt takes what is left of 8 tokens.
    assert shapes == [
        [(0, 1), (1, 7)],
        [(0, 1), (1, 7)],
        [(0, 1), (1, 7)],
        [(0, 1), (1, 7)],
        [(0, 1), (1, 2)],
    ]
    assert _shape(_step(scheduler)) == [(0, 1), (1, 1)]  # both decoding now


def test_only_the_last_chunk_samples() -> None:
    scheduler = Scheduler(BlockManager(64, BS), max_batch=2, max_tokens_per_step=4)
    scheduler.add(_sequence(6, arrival=0))
    assert [row.samples for row in _step(scheduler)] == [False]
    assert [row.samples for row in _step(scheduler)] == [True]


def test_a_request_waits_in_order_when_the_cache_is_full_and_joins_when_blocks_come_back() -> None:
    scheduler = Scheduler(BlockManager(4, BS), max_batch=4, max_tokens_per_step=64)
    first, second, third = _sequence(12, 0), _sequence(8, 1, first=200), _sequence(1, 2, first=300)
    for sequence in (first, second, third):
        scheduler.add(sequence)
    assert _shape(_step(scheduler)) == [(0, 12)]
    assert (
        scheduler.position(second) == 0 and scheduler.position(third) == 1
    )  # the small one does not overtake
    scheduler.finish(first)
    assert scheduler.blocks.used_blocks == 0
    assert _shape(_step(scheduler)) == [(1, 8), (2, 1)]


def test_max_batch_bounds_the_running_rows() -> None:
    scheduler = Scheduler(BlockManager(64, BS), max_batch=2, max_tokens_per_step=64)
    for arrival in range(3):
        scheduler.add(_sequence(2, arrival, first=10 * arrival + 10))
    assert len(_step(scheduler)) == 2 and len(scheduler.waiting) == 1


def test_the_newest_is_preempted_when_a_decode_needs_a_block_and_recomputed_later() -> None:
    scheduler = Scheduler(BlockManager(3, BS), max_batch=2, max_tokens_per_step=64)
    old, new = _sequence(4, 0), _sequence(4, 1, first=50)
    scheduler.add(old)
    scheduler.add(new)
    _step(
        scheduler, next_id=7
    )  # both prefilled, one id each: 4 + 1 tokens, two blocks each needed at the next decode
    assert scheduler.blocks.used_blocks == 2
    rows = _step(scheduler)
    assert _shape(rows) == [(0, 1)]  # the old one decodes, the new one gave its block back
    assert scheduler.waiting[0] is new and new.computed == 0 and new.table.blocks == []
    assert new.token_ids == [*range(50, 54), 7]  # its reply so far is kept, to be recomputed
    scheduler.finish(old)
    # Recomputed: its prompt's full block is still in the prefix cache, so only the last token runs.
    assert _shape(_step(scheduler)) == [(1, 1)]
    assert scheduler.preemptions == 1


def test_a_running_sequence_that_is_the_newest_preempts_itself() -> None:
    scheduler = Scheduler(BlockManager(1, BS), max_batch=1, max_tokens_per_step=8)
    only = _sequence(4, 0)
    scheduler.add(only)
    _step(scheduler)
    assert _step(scheduler) == [] and scheduler.waiting[0] is only


def test_a_budget_below_one_token_per_row_is_refused() -> None:
    with pytest.raises(ValueError, match="max_tokens_per_step"):
        Scheduler(BlockManager(4, BS), max_batch=8, max_tokens_per_step=4)
