"""One step on the device: the scheduled rows into static buffers, the forward, the sampler.

The runner owns every tensor a step is made of, allocated once at the
largest size: the flattened `ForwardBatch` (`inference.forward_batch`), the
rows' sampling parameters, and a mask per sequence row of the ids it has
seen (for the repetition penalty). A step fills their leading part from the
host and runs `model.forward(batch, kv)` then `device_sampling.sample`.

On CUDA a pure decode step is captured whole, embedding to sampled ids, in
one `torch.cuda.CUDAGraph` per batch-size bucket, and replayed: the host
then spends one graph launch per step instead of thousands of operator
dispatches. A decode of `n` rows replays the smallest bucket >= `n`, the
rows past `n` padded (no token, no cache slot written, `PAD_SLOT`). Steps
with a prefill, or on the CPU, or with ``cuda_graphs=False``, run the same
code eagerly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from inference.device_sampling import RowSampling, sample
from inference.forward_batch import PAD_SLOT, ForwardBatch
from inference.scheduler import ScheduledRow
from inference.sequence import Sequence

logger = logging.getLogger(__name__)

# Batch sizes a decode graph is captured for; a step replays the smallest that holds its rows.
_SMALL_BUCKETS = (1, 2, 4, 8, 16)
_BUCKET_STRIDE = 16


class StepModel(Protocol):
    """What the runner needs of a model: logits [B, vocab] at each row's last new token."""

    def forward(self, batch: ForwardBatch, kv: Any, *, check: bool = True) -> torch.Tensor: ...


def graph_buckets(max_batch: int) -> list[int]:
    """1, 2, 4, 8, 16, then every 16 up to max_batch (which is always one)."""
    buckets = {b for b in _SMALL_BUCKETS if b < max_batch}
    buckets.update(range(_BUCKET_STRIDE, max_batch, _BUCKET_STRIDE))
    buckets.add(max_batch)
    return sorted(buckets)


def bucket_for(rows: int, buckets: Seq[int]) -> int:
    return next(b for b in buckets if b >= rows)


@dataclass(frozen=True)
class StepResult:
    ids: list[int]  # one per scheduled row; meaningful where the row samples
    logits: torch.Tensor | None  # [rows, vocab], eager steps only (first_logprobs needs them)


class ModelRunner:
    def __init__(
        self,
        model: StepModel,
        kv: Any,
        *,
        vocab: int,
        device: torch.device,
        block_size: int,
        max_batch: int,
        max_tokens_per_step: int,
        max_blocks_per_sequence: int,
        cuda_graphs: bool = True,
    ) -> None:
        self.model = model
        self.kv = kv
        self.vocab = vocab
        self.device = device
        self.block_size = block_size
        self.max_batch = max_batch
        self.max_context = max_blocks_per_sequence * block_size
        tokens = max(max_tokens_per_step, max_batch)

        def zeros(*shape: int, dtype: torch.dtype = torch.long) -> torch.Tensor:
            return torch.zeros(*shape, dtype=dtype, device=device)

        self.input_ids = zeros(tokens)
        self.positions = zeros(tokens)
        self.slot_mapping = zeros(tokens)
        self.query_start = zeros(max_batch + 1, dtype=torch.int32)
        self.context_lens = zeros(max_batch, dtype=torch.int32)
        # Block tables by sequence row, not by the step's row: a running sequence's table only
        # grows, so a step writes just the blocks added since the last (one in 16 decode steps);
        # the step's tables are gathered on the device. The spare last row (zeros) is the padding's.
        self.row_tables = zeros(max_batch + 1, max_blocks_per_sequence, dtype=torch.int32)
        self._tables_synced = [0] * max_batch
        self.sampling = RowSampling(
            temperature=zeros(max_batch, dtype=torch.float32),
            top_k=zeros(max_batch),
            top_p=zeros(max_batch, dtype=torch.float32),
            penalty=zeros(max_batch, dtype=torch.float32),
            seed=zeros(max_batch),
            step=zeros(max_batch),
        )
        # Sequence rows of the seen-ids mask; the extra last row takes the padding rows' writes.
        self.row_slots = zeros(max_batch)
        self.seen = zeros(max_batch + 1, vocab, dtype=torch.bool)
        self.out_ids = zeros(max_batch)
        self._owner: list[tuple[Sequence, int] | None] = [None] * max_batch
        self.buckets = graph_buckets(max_batch)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.use_graphs = cuda_graphs and device.type == "cuda"

    # --- a step --------------------------------------------------------------------------

    def run(self, rows: list[ScheduledRow], *, want_logits: bool = False) -> StepResult:
        """Run one step for `rows` (a decode of all rows replays a graph when there is one)."""
        for row in rows:
            self._claim_row(row.sequence)
        decode = all(row.length == 1 for row in rows)
        bucket = bucket_for(len(rows), self.buckets) if decode and self.use_graphs else None
        if bucket is not None and bucket in self.graphs and not want_logits:
            self.fill(rows, pad_to=bucket)
            self.graphs[bucket].replay()
            return StepResult(self.out_ids[: len(rows)].tolist(), None)
        batch = self.fill(rows)
        logits = self.model.forward(batch, self.kv, check=False)  # the engine checked the prompts
        sampling = [i for i, row in enumerate(rows) if row.samples]
        ids = self._sample(logits, rows, sampling)
        return StepResult(ids, logits if want_logits else None)

    def fill(self, rows: list[ScheduledRow], *, pad_to: int | None = None) -> ForwardBatch:
        """Write the rows' tokens, positions, slots, tables and sampling parameters into the buffers.

        With `pad_to`, rows past len(rows) up to it are padding: one token
        each (the buffers' shapes are the bucket's), written to `PAD_SLOT`,
        with a context of that token alone and the spare seen-mask row.
        """
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        starts = [0]
        bs = self.block_size
        for row in rows:
            table = row.sequence.table.blocks
            span = range(row.start, row.start + row.length)
            ids.extend(row.sequence.token_ids[row.start : row.start + row.length])
            positions.extend(span)
            slots.extend(table[p // bs] * bs + p % bs for p in span)
            starts.append(starts[-1] + row.length)
        context = [row.start + row.length for row in rows]
        width = max(len(row.sequence.table.blocks) for row in rows)
        params = [row.sequence.request.params for row in rows]
        sampling = [
            [p.temperature for p in params],
            [p.top_k for p in params],
            [p.top_p for p in params],
            [p.repetition_penalty for p in params],
            [row.sequence.seed for row in rows],
            [row.sequence.generated for row in rows],
        ]
        row_slots = [row.sequence.slot for row in rows]
        padding = (pad_to or len(rows)) - len(rows)
        if padding:
            ids += [0] * padding
            positions += [0] * padding
            slots += [PAD_SLOT] * padding
            starts += [starts[-1] + i + 1 for i in range(padding)]
            context += [1] * padding
            for values, neutral in zip(sampling, (0.0, 0, 1.0, 1.0, 0, 0), strict=True):
                values += [neutral] * padding
            row_slots += [self.max_batch] * padding
        n, t = len(context), len(ids)
        _put(self.input_ids, ids)
        _put(self.positions, positions)
        _put(self.slot_mapping, slots)
        _put(self.query_start, starts)
        _put(self.context_lens, context)
        for row in rows:
            self._sync_table(row.sequence)
        for buffer, values in zip(vars(self.sampling).values(), sampling, strict=True):
            _put(buffer, values)
        _put(self.row_slots, row_slots)
        return ForwardBatch(
            input_ids=self.input_ids[:t],
            positions=self.positions[:t],
            slot_mapping=self.slot_mapping[:t],
            query_start=self.query_start[: n + 1],
            context_lens=self.context_lens[:n],
            block_tables=self.row_tables[self.row_slots[:n], :width] if pad_to is None else self._tables(n),
            max_query_len=max(row.length for row in rows) if rows else 1,
            max_context_len=max(context) if pad_to is None else self.max_context,
        )

    # --- CUDA graphs ---------------------------------------------------------------------

    def capture_graphs(self) -> None:
        """Capture one decode step per bucket, largest first so the smaller ones reuse its memory pool."""
        if not self.use_graphs:
            return
        pool = torch.cuda.graph_pool_handle()
        with torch.inference_mode():  # as the steps run: the forward returns inference tensors
            self._capture(pool)
        torch.cuda.synchronize()
        logger.info("captured decode graphs for batch sizes %s", self.buckets)

    def _capture(self, pool: Any) -> None:
        for bucket in reversed(self.buckets):
            self._pad_only(bucket)
            self._decode_step(bucket)  # warm-up outside the graph: lazy inits, Triton autotuning
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                self._decode_step(bucket)
            self.graphs[bucket] = graph

    def _pad_only(self, bucket: int) -> None:
        """Buffers for a decode of `bucket` padding rows: what a capture runs on."""
        self.input_ids[:bucket].zero_()
        self.positions[:bucket].zero_()
        self.slot_mapping[:bucket].fill_(PAD_SLOT)
        self.query_start[: bucket + 1].copy_(torch.arange(bucket + 1, dtype=torch.int32))
        self.context_lens[:bucket].fill_(1)
        self.row_slots[:bucket].fill_(self.max_batch)

    def _decode_step(self, bucket: int) -> None:
        """The captured step: forward, every path of the sampler, the seen mask, the ids out."""
        batch = ForwardBatch(
            input_ids=self.input_ids[:bucket],
            positions=self.positions[:bucket],
            slot_mapping=self.slot_mapping[:bucket],
            query_start=self.query_start[: bucket + 1],
            context_lens=self.context_lens[:bucket],
            block_tables=self._tables(bucket),
            max_query_len=1,
            max_context_len=self.max_context,
        )
        logits = self.model.forward(batch, self.kv, check=False)  # the engine checked the prompts
        slots = self.row_slots[:bucket]
        ids = sample(logits, _rows(self.sampling, slice(0, bucket)), self.seen[slots])
        self.seen[slots, ids] = True
        self.out_ids[:bucket].copy_(ids)

    # --- sampling state ------------------------------------------------------------------

    def _claim_row(self, sequence: Sequence) -> None:
        """A sequence new to its row (admitted, or back after a preemption): its seen ids and table afresh."""
        owner = (sequence, sequence.preemptions)
        if self._owner[sequence.slot] == owner:
            return
        self._owner[sequence.slot] = owner
        self._tables_synced[sequence.slot] = 0
        self.seen[sequence.slot].zero_()
        self.seen[sequence.slot, _host(sequence.token_ids, torch.long).to(self.device)] = True

    def _sync_table(self, sequence: Sequence) -> None:
        """Copy the blocks the sequence gained since the last step into its row of the tables."""
        blocks, done = sequence.table.blocks, self._tables_synced[sequence.slot]
        if len(blocks) > done:
            self.row_tables[sequence.slot, done : len(blocks)].copy_(
                _host(blocks[done:], torch.int32), non_blocking=True
            )
            self._tables_synced[sequence.slot] = len(blocks)

    def _tables(self, rows: int) -> torch.Tensor:
        """The step's block tables, full width (a graph's static shape), gathered by sequence row."""
        return self.row_tables[self.row_slots[:rows]]

    def _sample(self, logits: torch.Tensor, rows: list[ScheduledRow], sampling: list[int]) -> list[int]:
        ids = [0] * len(rows)
        if not sampling:
            return ids
        params = [rows[i].sequence.request.params for i in sampling]
        # Every row samples in a decode step: slices, not a gather of the whole logits.
        index: slice | torch.Tensor = (
            slice(0, len(rows)) if len(sampling) == len(rows) else _host(sampling, torch.long).to(self.device)
        )
        slots = self.row_slots[index]
        penalized = any(p.repetition_penalty != 1.0 for p in params)
        chosen = sample(
            logits[index],
            _rows(self.sampling, index),
            self.seen[slots] if penalized else None,
            sampled=any(p.temperature != 0 for p in params),
            filtered=any(p.top_k > 0 or p.top_p < 1.0 for p in params),
        )
        self.seen[slots, chosen] = True
        for i, token in zip(sampling, chosen.tolist(), strict=True):
            ids[i] = token
        return ids


def _rows(sampling: RowSampling, index: slice | torch.Tensor) -> RowSampling:
    return RowSampling(**{name: value[index] for name, value in vars(sampling).items()})


def _host(values: list[Any], dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _put(buffer: torch.Tensor, values: list[Any]) -> None:
    """Copy host values into the start of a device buffer (asynchronously from the host's side)."""
    buffer[: len(values)].copy_(_host(values, buffer.dtype), non_blocking=True)
