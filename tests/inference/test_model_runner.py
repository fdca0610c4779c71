"""The model runner's host side: graph buckets, static buffers filled for a step, padding rows."""

from __future__ import annotations

import pytest
import torch

from inference.block_manager import BlockTable
from inference.forward_batch import PAD_SLOT
from inference.model_runner import ModelRunner, bucket_for, graph_buckets
from inference.paged_engine import paged_engine_for
from inference.params import SamplingParams
from inference.scheduler import ScheduledRow
from inference.sequence import Sequence
from inference.steps import Request
from inference.tiny import build_tiny_model
from tests.support.paged_toy import ToyKV, ToyPagedModel

BS = 4


def _runner(max_batch: int = 8) -> ModelRunner:
    return ModelRunner(
        ToyPagedModel(),
        ToyKV(num_blocks=32, block_size=BS),
        vocab=32000,
        device=torch.device("cpu"),
        block_size=BS,
        max_batch=max_batch,
        max_tokens_per_step=32,
        max_blocks_per_sequence=16,
    )


def _sequence(tokens: list[int], blocks: list[int], computed: int, slot: int, **params: float) -> Sequence:
    request = Request(prompt=tokens, params=SamplingParams(**params), budget=10)
    sequence = Sequence.of(request, seed=99, arrival=slot)
    sequence.table = BlockTable(blocks=blocks)
    sequence.computed, sequence.slot = computed, slot
    return sequence


@pytest.mark.parametrize(
    ("max_batch", "buckets"),
    [
        (1, [1]),
        (5, [1, 2, 4, 5]),
        (32, [1, 2, 4, 8, 16, 32]),
        (40, [1, 2, 4, 8, 16, 32, 40]),
        (64, [1, 2, 4, 8, 16, 32, 48, 64]),
    ],
)
def test_graph_buckets_cover_every_batch_size_up_to_max_batch(max_batch: int, buckets: list[int]) -> None:
    assert graph_buckets(max_batch) == buckets
    assert all(bucket_for(n, buckets) >= n for n in range(1, max_batch + 1))
    assert bucket_for(max_batch, buckets) == max_batch


def test_a_mixed_step_is_flattened_row_after_row_with_slots_from_the_block_tables() -> None:
    runner = _runner()
    decoding = _sequence([5, 6, 7, 8, 9, 10], blocks=[3, 7], computed=5, slot=2, temperature=0.0)
    prefilling = _sequence(list(range(20, 30)), blocks=[1, 4, 9], computed=4, slot=0, top_k=5)
    batch = runner.fill([ScheduledRow.of(decoding, 1), ScheduledRow.of(prefilling, 5)])
    assert batch.input_ids.tolist() == [10, 24, 25, 26, 27, 28]
    assert batch.positions.tolist() == [5, 4, 5, 6, 7, 8]
    # position 5 of [3, 7] -> block 7, offset 1; positions 4..8 of [1, 4, 9] -> blocks 4 (x4) and 9
    assert batch.slot_mapping.tolist() == [29, 16, 17, 18, 19, 36]
    assert batch.query_start.tolist() == [0, 1, 6]
    assert batch.context_lens.tolist() == [6, 9]
    assert batch.block_tables.tolist() == [[3, 7, 0], [1, 4, 9]]
    assert (batch.max_query_len, batch.max_context_len, batch.is_decode) == (5, 9, False)
    assert runner.sampling.top_k[:2].tolist() == [0, 5]
    assert runner.sampling.temperature[:2].tolist() == [0.0, pytest.approx(0.7)]
    assert runner.sampling.seed[:2].tolist() == [99, 99]
    assert runner.row_slots[:2].tolist() == [2, 0]


def test_a_decode_padded_to_its_bucket_writes_nothing_for_the_padding_rows() -> None:
    runner = _runner()
    rows = [ScheduledRow.of(_sequence([1, 2, 3], blocks=[5], computed=2, slot=i), 1) for i in range(3)]
    batch = runner.fill(rows, pad_to=4)
    assert batch.input_ids.tolist() == [3, 3, 3, 0]
    assert batch.slot_mapping.tolist() == [22, 22, 22, PAD_SLOT]
    assert batch.query_start.tolist() == [0, 1, 2, 3, 4]
    assert batch.context_lens.tolist() == [3, 3, 3, 1]
    assert batch.block_tables.shape == (4, 16)  # the graph's static shape
    assert runner.row_slots[:4].tolist() == [0, 1, 2, runner.max_batch]  # padding: the spare seen row
    assert runner.sampling.temperature[3] == 0.0 and runner.sampling.penalty[3] == 1.0
    assert batch.is_decode and batch.max_context_len == 16 * BS


def test_a_sequence_new_to_its_row_starts_its_seen_ids_afresh() -> None:
    runner = _runner()
    first = _sequence([11, 12, 13], blocks=[0], computed=0, slot=1)
    runner.run([ScheduledRow.of(first, 3)])
    assert set(runner.seen[1].nonzero().flatten().tolist()) >= {11, 12, 13}
    second = _sequence([40, 41], blocks=[2], computed=0, slot=1)
    runner.run([ScheduledRow.of(second, 2)])
    marked = set(runner.seen[1].nonzero().flatten().tolist())
    assert {40, 41} <= marked and not {11, 12, 13} & marked


def test_graphs_stay_off_on_the_cpu() -> None:
    runner = _runner()
    runner.capture_graphs()
    assert not runner.use_graphs and runner.graphs == {}


class _EagerGraph:
    """Stands in for a captured graph on the CPU: replay runs the captured step's code eagerly."""

    def __init__(self, runner: ModelRunner, bucket: int) -> None:
        self.runner, self.bucket = runner, bucket

    def replay(self) -> None:
        self.runner._decode_step(self.bucket)


def test_the_replay_path_pads_to_its_bucket_and_gives_the_tokens_of_eager_steps() -> None:
    """Everything a CUDA replay does but the capture: padding rows, the step's code, ids from out_ids."""
    seeded = SamplingParams(
        temperature=0.9, top_k=40, top_p=0.9, repetition_penalty=1.2, seed=11, ignore_eos=True
    )
    greedy = SamplingParams(temperature=0.0, ignore_eos=True)
    prompts = [[1, *range(500 + 9 * i, 509 + 11 * i)] for i in range(3)]
    jobs = [(prompt, params) for prompt in prompts for params in (seeded, greedy)][:5]  # 5 rows: bucket 8
    replayed = paged_engine_for(build_tiny_model(), name="tiny", kv_cache_gb=0.02, max_batch=8)
    runner = replayed.runner
    runner.use_graphs = True
    runner.graphs = {bucket: _EagerGraph(runner, bucket) for bucket in runner.buckets}
    calls = []
    runner.graphs[8].replay = lambda: (calls.append(8), runner._decode_step(8))
    eager = paged_engine_for(build_tiny_model(), name="tiny", kv_cache_gb=0.02, max_batch=8)
    for engine in (replayed, eager):
        with engine._wakeup:  # all five join the same steps
            requests = [
                engine.submit(p, SamplingParams(**{**vars(params), "max_tokens": 8})) for p, params in jobs
            ]
        engine.results = [[request.tokens.get(timeout=30) for _ in range(8)] for request in requests]
    assert calls, "no step replayed the bucket of 8"
    assert replayed.results == eager.results
