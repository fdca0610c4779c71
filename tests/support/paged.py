"""Building `ForwardBatch`es by hand, as the engine's scheduler would, for the model's tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from inference.forward_batch import PAD_SLOT, ForwardBatch


@dataclass(frozen=True)
class Row:
    """One row of a step: ``new`` ids after ``cached`` tokens already in its blocks."""

    new: Sequence[int]
    blocks: Sequence[int]
    cached: int = 0


def make_batch(
    rows: Sequence[Row], *, block_size: int, padding_rows: int = 0, padding_tokens: int = 0
) -> ForwardBatch:
    """The step for ``rows``, then ``padding_rows`` empty rows and ``padding_tokens`` unowned
    tokens (writing to ``PAD_SLOT``), as a captured decode step padded to its bucket has."""
    ids, positions, slots, starts, lengths = [], [], [], [0], []
    for row in rows:
        for offset, token in enumerate(row.new):
            position = row.cached + offset
            ids.append(token)
            positions.append(position)
            slots.append(row.blocks[position // block_size] * block_size + position % block_size)
        starts.append(len(ids))
        lengths.append(row.cached + len(row.new))
    starts += [len(ids)] * padding_rows
    lengths += [0] * padding_rows
    ids += [0] * padding_tokens
    positions += [0] * padding_tokens
    slots += [PAD_SLOT] * padding_tokens
    width = max(len(row.blocks) for row in rows)
    tables = [list(row.blocks) + [0] * (width - len(row.blocks)) for row in rows]
    tables += [[0] * width] * padding_rows
    return ForwardBatch(
        input_ids=torch.tensor(ids, dtype=torch.long),
        positions=torch.tensor(positions, dtype=torch.long),
        slot_mapping=torch.tensor(slots, dtype=torch.long),
        query_start=torch.tensor(starts, dtype=torch.int32),
        context_lens=torch.tensor(lengths, dtype=torch.int32),
        block_tables=torch.tensor(tables, dtype=torch.int32),
        max_query_len=max(len(row.new) for row in rows),
        max_context_len=max(lengths),
    )
